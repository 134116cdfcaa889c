"""Registrations that survive reboot: the desired-state config, ``apply``, the unit.

* **The config** (:func:`config_path`, default ``/etc/binfmt.d/zz-binfmtctl.conf``): one
  register string per line in binfmt.d(5) syntax, the single source of truth for what
  binfmtctl registers at boot. It lives in ``/etc/binfmt.d`` so systemd-binfmt loads it
  too, and its name sorts after distro files (``qemu-aarch64.conf``, ``python3.11.conf``):
  systemd-binfmt applies files in lexicographic order of file name and replaces a
  same-named entry, so binfmtctl's version of ``qemu-aarch64`` wins. Edits keep the
  person's comments and lines; writes are atomic (temp file, fsync, rename), root-owned,
  mode 0644.
* **apply** (:func:`plan_apply`, :func:`apply_config`): make the live table match the
  config. Missing entries are registered, differing entries of the config's names
  replaced, every other entry left alone; each entry is validated first and applied on
  its own, so one that cannot be applied (its interpreter is on a file system not yet
  mounted, its QEMU package was removed) is reported and the rest still applied. This is
  the boot path: it imports only :mod:`entry`, :mod:`rules`, :mod:`plan` and
  :mod:`binfmt_misc` (never pyelftools, psutil or PyYAML).
* **The unit** (:data:`UNIT_NAME`, :func:`enable`, :func:`disable`): a oneshot service
  ordered after the binfmt_misc mount, local file systems and systemd-binfmt (and
  ``PartOf=`` it, so a restart of systemd-binfmt, which flushes every entry, re-applies
  binfmtctl's), before container engines. ``--root DIR`` works on an offline image root,
  as ``systemctl --root`` does; only a live system runs ``systemctl``, through
  :func:`systemctl`, the one place binfmtctl starts it.
* **Export / import** (:func:`export_entries`, :func:`render_export`,
  :func:`read_import`): binfmt.d, Debian update-binfmts format (import files and the
  admin database) and JSON.
* **Where else entries come from at boot** (:func:`persistent_sources`): binfmt.d
  directories with systemd's override and masking rules, update-binfmts' database and
  import directory, and binfmtctl's config.

Pure functions take and return plain data; the functions that touch files, the live
table or systemctl say so.

The package, one job per module: :mod:`.paths` (where things live), :mod:`.config` (the
desired-state config), :mod:`.apply` (the boot path), :mod:`.formats` (import/export),
:mod:`.boot` (boot sources), :mod:`.unit` (the systemd unit), :mod:`.edits` (config edits as reports), :mod:`.status`
(``persist status``). This module re-exports their public API.
"""

from __future__ import annotations

from binfmtctl.persist.apply import (
    ApplyItem,
    ApplyReport,
    Blocked,
    apply_config,
    missing_interpreter_fix,
    pending_mount,
    plan_apply,
    preflight,
)
from binfmtctl.persist.boot import (
    Source,
    boot_sources,
    effective_binfmt_d,
    persistent_sources,
)
from binfmtctl.persist.config import (
    ConfigChange,
    ConfigProblem,
    add_entries,
    atomic_write,
    config_lock,
    config_names,
    config_with,
    config_without,
    ensure_config,
    header_bytes,
    is_masked,
    os_error,
    parse_config,
    parse_rule,
    read_config,
    read_config_text,
    remove_names,
    rule_name,
    uninstall_config_names,
    write_config,
)
from binfmtctl.persist.edits import (
    ConfigEdit,
    ExportReport,
    ImportReport,
    add_to_config,
    export,
    pick_live,
    remove_from_config,
)
from binfmtctl.persist.formats import (
    EXPORT_FORMATS,
    Imported,
    detect_format,
    entry_differences,
    export_entries,
    import_files,
    interpreter_warnings,
    parse_binfmts_admin,
    parse_import,
    read_import,
    render_export,
    safety_problems,
)
from binfmtctl.persist.paths import (
    CONFIG_ENV,
    CONFIG_HEADER,
    DEFAULT_CONFIG,
    DIR_MODE,
    FILE_MODE,
    IGNORED_SUFFIXES,
    RUN_DETECTORS,
    UNIT_NAME,
    UPDATE_BINFMTS_KEYS,
    WANTED_BY,
    config_path,
    in_root,
    inside_path,
    resolve_in_root,
    root_dir,
    unit_path,
    wants_link,
)
from binfmtctl.persist.status import (
    LiveCompare,
    PersistStatus,
    StatusProblem,
    status,
)
from binfmtctl.persist.unit import (
    UnitReport,
    disable,
    enable,
    locate_unit_template,
    parse_exec_line,
    render_unit,
    self_command,
    systemctl,
    systemd_booted,
    systemd_quote,
    unit_exec,
    unit_settings,
    unit_template,
    wsl_note,
)
from binfmtctl.systemd_paths import BINFMT_D_DIRS, BINFMTS_ADMIN_DIR, BINFMTS_IMPORT_DIR, UNIT_DIR

__all__ = [
    "BINFMTS_ADMIN_DIR",
    "BINFMTS_IMPORT_DIR",
    "BINFMT_D_DIRS",
    "CONFIG_ENV",
    "CONFIG_HEADER",
    "DEFAULT_CONFIG",
    "DIR_MODE",
    "EXPORT_FORMATS",
    "FILE_MODE",
    "IGNORED_SUFFIXES",
    "RUN_DETECTORS",
    "UNIT_DIR",
    "UNIT_NAME",
    "UPDATE_BINFMTS_KEYS",
    "WANTED_BY",
    "ApplyItem",
    "ApplyReport",
    "Blocked",
    "ConfigChange",
    "ConfigEdit",
    "ConfigProblem",
    "ExportReport",
    "ImportReport",
    "Imported",
    "LiveCompare",
    "PersistStatus",
    "Source",
    "StatusProblem",
    "UnitReport",
    "add_entries",
    "add_to_config",
    "apply_config",
    "atomic_write",
    "boot_sources",
    "config_lock",
    "config_names",
    "config_path",
    "config_with",
    "config_without",
    "detect_format",
    "disable",
    "effective_binfmt_d",
    "enable",
    "ensure_config",
    "entry_differences",
    "export",
    "export_entries",
    "header_bytes",
    "import_files",
    "in_root",
    "inside_path",
    "interpreter_warnings",
    "is_masked",
    "locate_unit_template",
    "missing_interpreter_fix",
    "os_error",
    "parse_binfmts_admin",
    "parse_config",
    "parse_exec_line",
    "parse_import",
    "parse_rule",
    "pending_mount",
    "persistent_sources",
    "pick_live",
    "plan_apply",
    "preflight",
    "read_config",
    "read_config_text",
    "read_import",
    "remove_from_config",
    "remove_names",
    "render_export",
    "render_unit",
    "resolve_in_root",
    "root_dir",
    "rule_name",
    "safety_problems",
    "self_command",
    "status",
    "systemctl",
    "systemd_booted",
    "systemd_quote",
    "uninstall_config_names",
    "unit_exec",
    "unit_path",
    "unit_settings",
    "unit_template",
    "wants_link",
    "write_config",
    "wsl_note",
]
