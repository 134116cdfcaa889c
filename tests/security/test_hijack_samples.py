"""What the host runs natively (binfmtctl.hijack): the samples are real native programs'
headers, every entry the issue found is caught, and no foreign entry is."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from binfmtctl import hijack, table
from binfmtctl.elf import read_elf
from binfmtctl.entry import Entry, parse_register
from binfmtctl.kernelprofile import KernelProfile
from binfmtctl.match import COMPAT_NATIVE, native
from tests.elfgen import target_header

#: parsing takes a kernel profile; these tests parse for the running one
HOST = KernelProfile.current_default()

X86_64_HOST = hijack.host_identity(
    target_header(table.get_target("x86_64")).ljust(64, b"\0"), "x86_64"
)


def host_of(name: str) -> hijack.Identity | None:
    return hijack.host_identity(target_header(table.get_target(name)).ljust(64, b"\0"), name)


X86_64_EXEC = (
    r":h1:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00::/bin/true:"
)
HIJACKS = {
    "non-PIE x86_64": X86_64_EXEC,
    "#! scripts": ":h3:M::#!::/bin/true:",
    ".sh scripts": ":h4:E::sh::/bin/true:",
    "i386": table.get_target("i386").entry("/usr/bin/qemu-i386-static", "F", "h5"),
}


def entry(spec: str | Entry) -> Entry:
    return spec if isinstance(spec, Entry) else parse_register(spec.encode(), HOST)


@pytest.mark.parametrize("spec", HIJACKS.values(), ids=HIJACKS.keys())
def test_the_issue_entries_are_hijacks_by_synthesis_alone(spec: str | Entry) -> None:
    p = hijack.hijack_problem(entry(spec), hijack.samples(X86_64_HOST))
    assert p is not None and p.is_error and "runs natively" in p.message
    assert "--force" in p.fix


def test_non_pie_is_named_as_such() -> None:
    hits = hijack.native_hits(entry(X86_64_EXEC), hijack.samples(X86_64_HOST))
    assert hits and all("ET_EXEC (non-PIE)" in h for h in hits)


def test_synthetic_elf_headers_are_native_and_read_as_the_kind_they_claim(tmp_path: Path) -> None:
    elf = [(w, h) for w, h in hijack.synthetic(X86_64_HOST) if h.startswith(b"\x7fELF")]
    kinds = {w.split(" ELF ")[0] for w, _ in elf}
    assert kinds == {"x86_64", "i386", "i486"}
    for what, header in elf:
        assert native(header, "x86_64"), what
        f = tmp_path / "h"
        f.write_bytes(header.ljust(0x4000, b"\0"))  # the headers point past 256 bytes
        info = read_elf(f)
        assert info.e_type == ("ET_EXEC" if "ET_EXEC" in what else "ET_DYN"), what


def test_x32_only_where_the_kernel_runs_it() -> None:
    without = {w.split(" ELF ")[0] for w, _ in hijack.synthetic(X86_64_HOST)}
    with_x32 = {w.split(" ELF ")[0] for w, _ in hijack.synthetic(X86_64_HOST, x32=True)}
    assert "x32" not in without and "x32" in with_x32


def test_no_foreign_target_or_known_handler_is_a_hijack_on_this_host() -> None:
    """The real samples (PATH included) do not flag what must be allowed."""
    samples = hijack.gather()  # this x86_64 host: its own Python, its PATH
    host_family = table.host_target("x86_64").family
    for t in table.targets():
        e = t.entry(f"/usr/bin/qemu-{t.name}-static", "F")
        flagged = hijack.hijack_problem(e, samples) is not None
        assert flagged == (t.family == host_family), t.name
    for line in (
        ":WSLInterop:M::MZ::/init:PF",
        ":python3:M::\\x55\\x0d\\x0d\\x0a::/usr/bin/python3:",
    ):
        assert hijack.hijack_problem(entry(line), samples) is None, line


@pytest.mark.parametrize("host", ["x86_64", "aarch64", "ppc64", "sparc64", "mips64el", "s390x"])
def test_synthesis_agrees_with_match_native_on_every_target(host: str) -> None:
    """COMPAT mirrors match.COMPAT_NATIVE: a table target's entry is a hijack exactly when
    match.native() says the host runs that target's binaries."""
    samples = hijack.samples(host_of(host))
    runnable = {host, *COMPAT_NATIVE.get(host, ())}
    for t in table.targets():
        flagged = hijack.hijack_problem(t.entry("/q", "F"), samples) is not None
        assert flagged == (t.name in runnable), (host, t.name)
        assert native(t.sample_header(), host) == (t.name in runnable), (host, t.name)


def test_the_running_python_is_the_host() -> None:
    host = hijack.host_identity(Path("/proc/self/exe").read_bytes()[:64])
    assert host is not None and (host.class_, host.machine) == (64, 62)


def test_aarch64_host_runs_aarch64_not_x86_64() -> None:
    samples = hijack.samples(host_of("aarch64"))
    own = table.get_target("aarch64").entry("/q", "F")
    x86 = table.get_target("x86_64").entry("/q", "F")
    assert hijack.hijack_problem(own, samples) is not None
    assert hijack.hijack_problem(x86, samples) is None


def test_a_magic_pinned_to_a_real_file_is_caught_only_by_the_path_sample() -> None:
    head = Path("/bin/sh").read_bytes()[:64]  # e_entry, e_shoff... as this build has them
    pinned = Entry("pin", "M", "/bin/true", "", magic=head)
    assert hijack.hijack_problem(pinned, hijack.samples(X86_64_HOST)) is None
    with_path = hijack.samples(X86_64_HOST, [("/usr/bin/sh", Path("/bin/sh").read_bytes()[:256])])
    p = hijack.hijack_problem(pinned, with_path)
    assert p is not None and "/usr/bin/sh" in p.message


def test_path_files_count_only_when_the_kernel_runs_them_itself() -> None:
    aarch64_file = target_header(table.get_target("aarch64")).ljust(64, b"\0")
    jar = b"PK\x03\x04" + bytes(60)
    script = b"#!/bin/sh\n"
    with_path = hijack.samples(
        X86_64_HOST, [("/p/arm-tool", aarch64_file), ("/p/app", jar), ("/p/s", script)]
    )
    labels = {w for w, _ in with_path.headers}
    assert "/p/s" in labels and not {"/p/arm-tool", "/p/app"} & labels
    aarch64_qemu = table.get_target("aarch64").entry("/q", "F")
    assert hijack.hijack_problem(aarch64_qemu, with_path) is None
    assert hijack.hijack_problem(entry(":jar:M::PK\\x03\\x04::/usr/bin/jexec:"), with_path) is None


def test_extension_entries_match_extensions_of_programs_on_path() -> None:
    samples = hijack.samples(X86_64_HOST, path_names=["python3.12", "tool.jar", "plain"])
    assert hijack.hijack_problem(entry(":j:E::jar::/bin/true:"), samples) is not None
    assert hijack.hijack_problem(entry(":v:E::12::/bin/true:"), samples) is not None
    assert hijack.hijack_problem(entry(":x:E::xyz::/bin/true:"), samples) is None
    assert hijack.extensions_of(["a.tar.gz", "noext", "x."]) == {"gz": "a.tar.gz", "": "x."}


def test_scan_path_reads_files_skips_fifos_and_lists_names(tmp_path: Path) -> None:
    d = tmp_path / "bin"
    d.mkdir()
    (d / "prog.pl").write_bytes(b"#!/usr/bin/perl\n")
    os.mkfifo(d / "fifo")  # opening it for reading would block: it must be skipped
    os.symlink("prog.pl", d / "alias")  # the same file twice: read once
    headers, names = hijack.scan_path(f"{d}:relative/dir:/nonexistent")
    assert sorted(names) == ["alias", "fifo", "prog.pl"]
    assert [h for _, h in headers] == [b"#!/usr/bin/perl\n"]
    assert stat.S_ISFIFO(os.stat(d / "fifo").st_mode)


def test_the_sample_is_bounded() -> None:
    many = [f"f{i}" for i in range(5000)]
    picked = hijack._spread(many, 100)
    assert len(picked) == 100 and picked[0] == "f0" and picked[-1] == "f4950"
