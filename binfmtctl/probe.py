"""Tiny static ELF probes, one per QEMU user-mode target.

A probe is built here from hand-encoded machine code (no toolchain, no
downloads): it calls write(1, marker, len) then exit_group(0), so running it
through binfmt_misc + QEMU and reading ``marker(target)`` on stdout proves the
registration works. Each image is one ELF header, one R+X PT_LOAD program
header, the marker, and the code; no sections, no PT_INTERP.
"""

from __future__ import annotations

import os
import pathlib
import struct
import tempfile
from collections.abc import Callable, Sequence

from binfmtctl.record import dataclass, field

__all__ = [
    "PROBE_TARGETS",
    "WAITING_TARGETS",
    "UnknownTargetError",
    "build_probe",
    "marker",
    "write_probe",
]

# ELF constants (System V gABI).
_ET_EXEC = 2
_PT_LOAD = 1
_PF_X, _PF_R = 1, 4
_EV_CURRENT = 1

# code builder: (address of the blob, marker address, marker length) -> (blob, entry offset)
_Builder = Callable[[int, int, int], tuple[bytes, int]]


@dataclass(frozen=True)
class _Spec:
    """How one QEMU target's probe looks: ELF identity plus its code builder."""

    bits: int  # 32 or 64 (EI_CLASS)
    big_endian: bool  # EI_DATA
    machine: int  # e_machine
    flags: int  # e_flags
    base: int  # p_vaddr of the single PT_LOAD (offset 0 maps here); < 2**31, so the
    # builders load the marker address as a 32-bit constant
    code: _Builder
    align: int = 0x10000  # p_align; covers the 4/8/16/64 KiB page sizes of every target


class UnknownTargetError(ValueError, KeyError):
    """No probe exists for this target name (a ValueError and a KeyError)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _pack(big_endian: bool, fmt: str, *values: int) -> bytes:
    return struct.pack((">" if big_endian else "<") + fmt, *values)


def _words(big_endian: bool, words: Sequence[int]) -> bytes:
    return _pack(big_endian, f"{len(words)}I", *words)


def _halves(big_endian: bool, halves: Sequence[int]) -> bytes:
    return _pack(big_endian, f"{len(halves)}H", *halves)


def _hi_lo_signed(value: int, lo_bits: int) -> tuple[int, int]:
    """Split value into (hi, lo) for a CPU that sign-extends lo: (hi << lo_bits) + lo == value."""
    lo = value & ((1 << lo_bits) - 1)
    if lo >= 1 << (lo_bits - 1):
        lo -= 1 << lo_bits
    return (value - lo) >> lo_bits, lo


# --- per-architecture code -------------------------------------------------------
# Every builder emits: write(1, msg, n); exit_group(0). Syscall numbers are Linux's
# for that ABI. Constants that the CPU sign-extends are split with _hi_lo_signed.


def _x86_64(at: int, msg: int, n: int) -> tuple[bytes, int]:
    code = (
        b"\xb8" + _pack(False, "I", 1)  # mov eax, 1 (write)
        + b"\xbf" + _pack(False, "I", 1)  # mov edi, 1 (fd)
        + b"\xbe" + _pack(False, "I", msg)  # mov esi, msg
        + b"\xba" + _pack(False, "I", n)  # mov edx, n
        + b"\x0f\x05"  # syscall
        + b"\xb8" + _pack(False, "I", 231)  # mov eax, 231 (exit_group)
        + b"\x31\xff"  # xor edi, edi
        + b"\x0f\x05"  # syscall
    )  # fmt: skip
    return code, 0


def _i386(at: int, msg: int, n: int) -> tuple[bytes, int]:
    code = (
        b"\xb8" + _pack(False, "I", 4)  # mov eax, 4 (write)
        + b"\xbb" + _pack(False, "I", 1)  # mov ebx, 1 (fd)
        + b"\xb9" + _pack(False, "I", msg)  # mov ecx, msg
        + b"\xba" + _pack(False, "I", n)  # mov edx, n
        + b"\xcd\x80"  # int 0x80
        + b"\xb8" + _pack(False, "I", 252)  # mov eax, 252 (exit_group)
        + b"\x31\xdb"  # xor ebx, ebx
        + b"\xcd\x80"  # int 0x80
    )  # fmt: skip
    return code, 0


def _aarch64(at: int, msg: int, n: int) -> tuple[bytes, int]:
    def movz(rd: int, imm16: int, shift: int = 0) -> int:
        return 0xD2800000 | (shift // 16) << 21 | imm16 << 5 | rd

    def movk(rd: int, imm16: int, shift: int) -> int:
        return 0xF2800000 | (shift // 16) << 21 | imm16 << 5 | rd

    svc0 = 0xD4000001
    words = [
        movz(0, 1),  # x0 = 1 (fd)
        movz(1, msg & 0xFFFF),  # x1 = msg[15:0]
        movk(1, msg >> 16, 16),  # x1 |= msg[31:16] << 16
        movz(2, n),  # x2 = n
        movz(8, 64),  # x8 = 64 (write)
        svc0,
        movz(0, 0),  # x0 = 0
        movz(8, 94),  # x8 = 94 (exit_group)
        svc0,
    ]
    # A64 instructions are little-endian even on aarch64_be.
    return _words(False, words), 0


def _aarch64_wait(at: int, msg: int, n: int) -> tuple[bytes, int]:
    """write(1, marker, n); read(0, sp, 1), which blocks until stdin has a byte or
    closes; exit_group(0). A foreign process that stays alive as long as its caller
    wants: what ``status`` and the in-use refusals are shown with."""
    code, _ = _aarch64(at, msg, n)
    svc0 = 0xD4000001
    words = [
        0xD2800000,  # movz x0, #0 (fd 0)
        0x910003E1,  # mov x1, sp (add x1, sp, #0): one byte of stack as the buffer
        0xD2800022,  # movz x2, #1
        0xD28007E8,  # movz x8, #63 (read)
        svc0,
    ]
    write_part = code[: 6 * 4]  # the first six words: write(1, marker, n)
    exit_part = code[6 * 4 :]
    return write_part + _words(False, words) + exit_part, 0


def _arm(big_endian_code: bool) -> _Builder:
    # ARM (A32) EABI; armeb is BE8 (data big-endian, instructions little-endian).
    def build(at: int, msg: int, n: int) -> tuple[bytes, int]:
        def mov(rd: int, imm8: int) -> int:
            return 0xE3A00000 | rd << 12 | imm8

        def orr_byte(rd: int, value: int, shift: int) -> int:
            # orr rd, rd, #(byte << shift): an 8-bit immediate rotated right by 2*rot
            rot = ((32 - shift) % 32) // 2
            return 0xE3800000 | rd << 16 | rd << 12 | rot << 8 | ((value >> shift) & 0xFF)

        svc0 = 0xEF000000
        words = [
            mov(0, 1),  # r0 = 1 (fd)
            mov(1, msg & 0xFF),  # r1 = msg[7:0]
            orr_byte(1, msg, 8),  # r1 |= msg[15:8]
            orr_byte(1, msg, 16),  # r1 |= msg[23:16]
            orr_byte(1, msg, 24),  # r1 |= msg[31:24]
            mov(2, n),  # r2 = n
            mov(7, 4),  # r7 = 4 (write)
            svc0,
            mov(0, 0),  # r0 = 0
            mov(7, 248),  # r7 = 248 (exit_group)
            svc0,
        ]
        return _words(big_endian_code, words), 0

    return build


def _ppc(big_endian: bool, *, descriptor: bool = False) -> _Builder:
    # ppc, ppc64 (ELFv1: entry is a function descriptor) and ppc64le (ELFv2).
    def build(at: int, msg: int, n: int) -> tuple[bytes, int]:
        hi, lo = msg >> 16, msg & 0xFFFF
        sc = 0x44000002
        words = [
            0x38000004,  # li r0, 4 (write)
            0x38600001,  # li r3, 1 (fd)
            0x3C800000 | hi,  # lis r4, msg@h
            0x60840000 | lo,  # ori r4, r4, msg@l
            0x38A00000 | n,  # li r5, n
            sc,
            0x380000EA,  # li r0, 234 (exit_group)
            0x38600000,  # li r3, 0
            sc,
        ]
        code = _words(big_endian, words)
        if not descriptor:
            return code, 0
        # ELFv1 function descriptor {entry address, TOC, environment}.
        return _pack(big_endian, "3Q", at + 24, 0, 0) + code, 0

    return build


def _s390x(at: int, msg: int, n: int) -> tuple[bytes, int]:
    code = (
        b"\xa7\x29" + _pack(True, "H", 1)  # lghi %r2, 1 (fd)
        + b"\xc0\x3f" + _pack(True, "I", msg)  # llilf %r3, msg
        + b"\xa7\x49" + _pack(True, "H", n)  # lghi %r4, n
        + b"\x0a\x04"  # svc 4 (write)
        + b"\xa7\x29\x00\x00"  # lghi %r2, 0
        + b"\x0a\xf8"  # svc 248 (exit_group)
    )  # fmt: skip
    return code, 0


def _riscv(at: int, msg: int, n: int) -> tuple[bytes, int]:
    def addi(rd: int, rs: int, imm: int) -> int:
        return (imm & 0xFFF) << 20 | rs << 15 | rd << 7 | 0x13

    hi, lo = _hi_lo_signed(msg, 12)
    a0, a1, a2, a7 = 10, 11, 12, 17
    ecall = 0x00000073
    words = [
        addi(a0, 0, 1),  # li a0, 1 (fd)
        (hi & 0xFFFFF) << 12 | a1 << 7 | 0x37,  # lui a1, %hi(msg)
        addi(a1, a1, lo),  # addi a1, a1, %lo(msg)
        addi(a2, 0, n),  # li a2, n
        addi(a7, 0, 64),  # li a7, 64 (write)
        ecall,
        addi(a0, 0, 0),  # li a0, 0
        addi(a7, 0, 94),  # li a7, 94 (exit_group)
        ecall,
    ]
    return _words(False, words), 0


def _mips(big_endian: bool, nr_write: int, nr_exit_group: int) -> _Builder:
    # o32 (4000+), n64 (5000+) and n32 (6000+) differ only in syscall numbers here.
    def build(at: int, msg: int, n: int) -> tuple[bytes, int]:
        def li(rt: int, imm: int) -> int:
            return 0x24000000 | rt << 16 | imm  # addiu rt, $zero, imm

        v0, a0, a1, a2 = 2, 4, 5, 6
        syscall = 0x0000000C
        words = [
            li(a0, 1),  # fd
            0x3C000000 | a1 << 16 | msg >> 16,  # lui a1, msg[31:16]
            0x34000000 | a1 << 21 | a1 << 16 | (msg & 0xFFFF),  # ori a1, a1, msg[15:0]
            li(a2, n),
            li(v0, nr_write),
            syscall,
            li(a0, 0),
            li(v0, nr_exit_group),
            syscall,
        ]
        return _words(big_endian, words), 0

    return build


def _sparc(trap: int) -> _Builder:
    # sparc/sparc32plus trap with "ta 0x10", sparc64 with "ta 0x6d".
    def build(at: int, msg: int, n: int) -> tuple[bytes, int]:
        ta = 0x91D02000 | trap
        words = [
            0x90102001,  # mov 1, %o0 (fd)
            0x13000000 | msg >> 10,  # sethi %hi(msg), %o1
            0x92126000 | (msg & 0x3FF),  # or %o1, %lo(msg), %o1
            0x94102000 | n,  # mov n, %o2
            0x82102004,  # mov 4, %g1 (write)
            ta,
            0x90102000,  # clr %o0
            0x821020BC,  # mov 188, %g1 (exit_group)
            ta,
        ]
        return _words(True, words), 0

    return build


def _m68k(at: int, msg: int, n: int) -> tuple[bytes, int]:
    code = (
        _halves(True, [0x7201])  # moveq #1, %d1 (fd)
        + _halves(True, [0x243C]) + _pack(True, "I", msg)  # move.l #msg, %d2
        + _halves(True, [0x7600 | n])  # moveq #n, %d3
        + _halves(True, [0x7004])  # moveq #4, %d0 (write)
        + _halves(True, [0x4E40])  # trap #0
        + _halves(True, [0x7200])  # moveq #0, %d1
        + _halves(True, [0x203C]) + _pack(True, "I", 247)  # move.l #247, %d0 (exit_group)
        + _halves(True, [0x4E40])  # trap #0
    )  # fmt: skip
    return code, 0


def _alpha(at: int, msg: int, n: int) -> tuple[bytes, int]:
    def lda(ra: int, rb: int, disp: int, *, high: bool = False) -> int:
        # lda ra, disp(rb) / ldah ra, disp(rb)
        return (0x09 if high else 0x08) << 26 | ra << 21 | rb << 16 | (disp & 0xFFFF)

    hi, lo = _hi_lo_signed(msg, 16)
    v0, a0, a1, a2, zero = 0, 16, 17, 18, 31
    callsys = 0x00000083  # call_pal 0x83
    words = [
        lda(a0, zero, 1),  # fd
        lda(a1, zero, hi, high=True),  # ldah a1, hi(msg)
        lda(a1, a1, lo),  # lda a1, lo(a1)
        lda(a2, zero, n),
        lda(v0, zero, 4),  # write
        callsys,
        0x47FF0410,  # clr a0 (bis $31, $31, $16)
        lda(v0, zero, 405),  # exit_group
        callsys,
    ]
    return _words(False, words), 0


def _hppa(at: int, msg: int, n: int) -> tuple[bytes, int]:
    def ldo(t: int, b: int, imm: int) -> int:
        # ldo imm(b), t with a low-sign-first 14-bit immediate; ldi is ldo imm(%r0)
        im14 = (imm & 0x1FFF) << 1 | (1 if imm < 0 else 0)
        return 0x0D << 26 | b << 21 | t << 16 | im14

    def ldil(t: int, value: int) -> int:
        x = value >> 11  # the left 21 bits, in PA-RISC's scrambled field order
        im21 = (
            (x & 0x100000) >> 20
            | (x & 0x0FFE00) >> 8
            | (x & 0x000180) << 7
            | (x & 0x00007C) << 14
            | (x & 0x000003) << 12
        )
        return 0x08 << 26 | t << 21 | im21

    be_l_gateway = 0xE4008200  # be,l 0x100(%sr2, %r0), %sr0, %r31 (syscall gateway)
    r20, r24, r25, r26 = 20, 24, 25, 26
    words = [
        ldo(r26, 0, 1),  # ldi 1, %r26 (fd)
        ldil(r25, msg),  # ldil L%msg, %r25
        ldo(r25, r25, msg & 0x7FF),  # ldo R%msg(%r25), %r25
        ldo(r24, 0, n),  # ldi n, %r24
        be_l_gateway,
        ldo(r20, 0, 4),  # (delay slot) ldi 4, %r20 (write)
        ldo(r26, 0, 0),  # ldi 0, %r26
        be_l_gateway,
        ldo(r20, 0, 222),  # (delay slot) ldi 222, %r20 (exit_group)
    ]
    return _words(True, words), 0


def _sh4(big_endian: bool) -> _Builder:
    def build(at: int, msg: int, n: int) -> tuple[bytes, int]:
        pool = at + 16  # literal pool right after the 8 instructions; at is 4-aligned

        def mov_l_pc(rn: int, insn_at: int, lit_at: int) -> int:
            # mov.l @(disp, PC), Rn loads from (PC & ~3) + 4 + disp * 4
            return 0xD000 | rn << 8 | (lit_at - ((insn_at & ~3) + 4)) // 4

        halves = [
            0xE401,  # mov #1, r4 (fd)
            mov_l_pc(5, at + 2, pool),  # mov.l @(pool), r5 = msg
            0xE600 | n,  # mov #n, r6
            0xE304,  # mov #4, r3 (write)
            0xC313,  # trapa #0x13
            0xE400,  # mov #0, r4
            mov_l_pc(3, at + 12, pool + 4),  # mov.l @(pool+4), r3 = 252 (exit_group)
            0xC311,  # trapa #0x11
        ]
        return _halves(big_endian, halves) + _pack(big_endian, "2I", msg, 252), 0

    return build


def _microblaze(big_endian: bool) -> _Builder:
    def build(at: int, msg: int, n: int) -> tuple[bytes, int]:
        def addik(rd: int, ra: int, imm: int) -> int:
            return 0x0C << 26 | rd << 21 | ra << 16 | (imm & 0xFFFF)

        brki_r14_8 = 0xB9CC0008  # brki r14, 0x8 (syscall)
        words = [
            addik(5, 0, 1),  # r5 = 1 (fd)
            0xB0000000 | msg >> 16,  # imm msg[31:16]
            addik(6, 0, msg & 0xFFFF),  # r6 = msg
            addik(7, 0, n),  # r7 = n
            addik(12, 0, 4),  # r12 = 4 (write)
            brki_r14_8,
            addik(5, 0, 0),  # r5 = 0
            addik(12, 0, 252),  # r12 = 252 (exit_group)
            brki_r14_8,
        ]
        return _words(big_endian, words), 0

    return build


def _or1k(at: int, msg: int, n: int) -> tuple[bytes, int]:
    def addi(rd: int, ra: int, imm: int) -> int:
        return 0x27 << 26 | rd << 21 | ra << 16 | (imm & 0xFFFF)

    sys1, nop = 0x20000001, 0x15000000
    words = [
        addi(3, 0, 1),  # l.addi r3, r0, 1 (fd)
        0x18800000 | msg >> 16,  # l.movhi r4, msg[31:16]
        0xA8840000 | (msg & 0xFFFF),  # l.ori r4, r4, msg[15:0]
        addi(5, 0, n),  # l.addi r5, r0, n
        addi(11, 0, 64),  # l.addi r11, r0, 64 (write)
        sys1,  # l.sys 1
        nop,
        addi(3, 0, 0),
        addi(11, 0, 94),  # exit_group
        sys1,
        nop,
    ]
    return _words(True, words), 0


def _xtensa(big_endian: bool) -> _Builder:
    # 24-bit instructions. A big-endian core stores the same fields in mirrored
    # positions (op0 in the top nibble), so each format is laid out per endianness.
    def build(at: int, msg: int, n: int) -> tuple[bytes, int]:
        def insn(le_fields: int, be_fields: int) -> bytes:
            return be_fields.to_bytes(3, "big") if big_endian else le_fields.to_bytes(3, "little")

        def movi(t: int, imm: int) -> bytes:  # RRI8: op0=2, r=0xa, imm12 = s:imm8
            imm &= 0xFFF
            s, imm8 = imm >> 8, imm & 0xFF
            return insn(
                imm8 << 16 | 0xA << 12 | s << 8 | t << 4 | 0x2,
                0x2 << 20 | t << 16 | s << 12 | 0xA << 8 | imm8,
            )

        def l32r(t: int, pc: int, lit: int) -> bytes:  # RI16: op0=1
            imm16 = ((lit - ((pc + 3) & ~3)) >> 2) & 0xFFFF
            return insn(imm16 << 8 | t << 4 | 0x1, 0x1 << 20 | t << 16 | imm16)

        syscall = insn(0x005000, 0x000500)  # RRR: op0=0 r=5
        entry = at + 4  # the literal (msg) sits just before the code: l32r reaches backwards
        code = (
            movi(2, 13)  # a2 = 13 (write)
            + movi(6, 1)  # a6 = 1 (fd)
            + l32r(3, entry + 6, at)  # a3 = msg
            + movi(4, n)  # a4 = n
            + syscall
            + movi(2, 119)  # a2 = 119 (exit_group)
            + movi(6, 0)  # a6 = 0
            + syscall
        )
        return _pack(big_endian, "I", msg) + code, 4

    return build


def _hexagon(at: int, msg: int, n: int) -> tuple[bytes, int]:
    def tfrsi(rd: int, imm: int, *, end: bool = True) -> int:
        # Rd = #s16, one-instruction packet unless end=False; imm bits are split 9/5/2
        imm &= 0xFFFF
        pp = 0b11 if end else 0b01
        return (
            0x78000000
            | (imm >> 14) << 22
            | ((imm >> 9) & 0x1F) << 16
            | pp << 14
            | (imm & 0x1FF) << 5
            | rd
        )

    ext = msg >> 6  # immext carries bits [31:6]; the next instruction holds [5:0]
    immext = (ext >> 14) << 16 | 0b01 << 14 | (ext & 0x3FFF)
    trap0_1 = 0x5400C004  # trap0(#1)
    words = [
        tfrsi(0, 1),  # r0 = #1 (fd)
        immext,  # { immext(#msg)
        tfrsi(1, msg & 0x3F),  #   r1 = ##msg }
        tfrsi(2, n),  # r2 = #n
        tfrsi(6, 64),  # r6 = #64 (write)
        trap0_1,
        tfrsi(0, 0),  # r0 = #0
        tfrsi(6, 94),  # r6 = #94 (exit_group)
        trap0_1,
    ]
    return _words(False, words), 0


def _loongarch64(at: int, msg: int, n: int) -> tuple[bytes, int]:
    def ori(rd: int, rj: int, ui12: int) -> int:
        return 0x03800000 | ui12 << 10 | rj << 5 | rd

    zero, a0, a1, a2, a7 = 0, 4, 5, 6, 11
    syscall0 = 0x002B0000
    words = [
        ori(a0, zero, 1),  # li.w a0, 1 (fd)
        0x14000000 | (msg >> 12) << 5 | a1,  # lu12i.w a1, msg[31:12]
        ori(a1, a1, msg & 0xFFF),  # ori a1, a1, msg[11:0]
        ori(a2, zero, n),
        ori(a7, zero, 64),  # write
        syscall0,
        ori(a0, zero, 0),
        ori(a7, zero, 94),  # exit_group
        syscall0,
    ]
    return _words(False, words), 0


# --- target table ----------------------------------------------------------------
# e_flags are what the target's Linux toolchain emits for an ordinary executable.
_EF_ARM_EABI5 = 0x05000000
_EF_ARM_BE8 = 0x00800000
_EF_MIPS_NOREORDER = 0x1
_EF_MIPS_ABI2 = 0x20  # n32
_EF_MIPS_ABI_O32 = 0x1000
_EF_MIPS_ARCH_32R2 = 0x70000000
_EF_MIPS_ARCH_64R2 = 0x80000000
_MIPS_O32 = _EF_MIPS_ARCH_32R2 | _EF_MIPS_ABI_O32 | _EF_MIPS_NOREORDER
_MIPS_N32 = _EF_MIPS_ARCH_64R2 | _EF_MIPS_ABI2 | _EF_MIPS_NOREORDER
_MIPS_N64 = _EF_MIPS_ARCH_64R2 | _EF_MIPS_NOREORDER
_EF_RISCV_RVC_DOUBLE = 0x5  # RVC | float ABI double (Debian's lp64d/ilp32d)

_SPECS: dict[str, _Spec] = {
    # name: _Spec(bits, big_endian, e_machine, e_flags, base, code)
    "i386": _Spec(32, False, 3, 0, 0x08048000, _i386, align=0x1000),
    # QEMU's table has an i486 entry (EM_486, run by qemu-i386); same code as i386.
    "i486": _Spec(32, False, 6, 0, 0x08048000, _i386, align=0x1000),
    "alpha": _Spec(64, False, 0x9026, 0, 0x10000, _alpha),
    "arm": _Spec(32, False, 40, _EF_ARM_EABI5, 0x10000, _arm(False)),
    "armeb": _Spec(32, True, 40, _EF_ARM_EABI5 | _EF_ARM_BE8, 0x10000, _arm(False)),
    "sparc": _Spec(32, True, 2, 0, 0x10000, _sparc(0x10)),
    "sparc32plus": _Spec(32, True, 18, 0x100, 0x10000, _sparc(0x10)),  # EF_SPARC_32PLUS
    "sparc64": _Spec(64, True, 43, 0x2, 0x100000, _sparc(0x6D)),  # EF_SPARCV9_RMO
    "ppc": _Spec(32, True, 20, 0, 0x10000000, _ppc(True)),
    "ppc64": _Spec(64, True, 21, 1, 0x10000000, _ppc(True, descriptor=True)),  # ELFv1
    "ppc64le": _Spec(64, False, 21, 2, 0x10000000, _ppc(False)),  # ELFv2
    "m68k": _Spec(32, True, 4, 0, 0x80000000, _m68k),
    "mips": _Spec(32, True, 8, _MIPS_O32, 0x400000, _mips(True, 4004, 4246)),
    "mipsel": _Spec(32, False, 8, _MIPS_O32, 0x400000, _mips(False, 4004, 4246)),
    "mipsn32": _Spec(32, True, 8, _MIPS_N32, 0x400000, _mips(True, 6001, 6205)),
    "mipsn32el": _Spec(32, False, 8, _MIPS_N32, 0x400000, _mips(False, 6001, 6205)),
    "mips64": _Spec(64, True, 8, _MIPS_N64, 0x400000, _mips(True, 5001, 5205)),
    "mips64el": _Spec(64, False, 8, _MIPS_N64, 0x400000, _mips(False, 5001, 5205)),
    "sh4": _Spec(32, False, 42, 0x9, 0x400000, _sh4(False)),  # EF_SH4
    "sh4eb": _Spec(32, True, 42, 0x9, 0x400000, _sh4(True)),
    "s390x": _Spec(64, True, 22, 0, 0x1000000, _s390x),
    "aarch64": _Spec(64, False, 183, 0, 0x400000, _aarch64),
    "aarch64_be": _Spec(64, True, 183, 0, 0x400000, _aarch64),
    "hppa": _Spec(32, True, 15, 0x210, 0x10000, _hppa),  # EFA_PARISC_1_1
    "riscv32": _Spec(32, False, 243, _EF_RISCV_RVC_DOUBLE, 0x10000, _riscv),
    "riscv64": _Spec(64, False, 243, _EF_RISCV_RVC_DOUBLE, 0x10000, _riscv),
    "xtensa": _Spec(32, False, 94, 0x300, 0x400000, _xtensa(False)),  # XT_INSN | XT_LIT
    "xtensaeb": _Spec(32, True, 94, 0x300, 0x400000, _xtensa(True)),
    # QEMU's binfmt magic for microblaze names EM_MICROBLAZE_OLD (0xbaab), not 189.
    "microblaze": _Spec(32, True, 0xBAAB, 0, 0x10000000, _microblaze(True)),
    "microblazeel": _Spec(32, False, 0xBAAB, 0, 0x10000000, _microblaze(False)),
    "or1k": _Spec(32, True, 92, 0, 0x10000, _or1k),
    "x86_64": _Spec(64, False, 62, 0, 0x400000, _x86_64),
    "hexagon": _Spec(32, False, 164, 0x67, 0x10000, _hexagon),  # EF_HEXAGON_MACH_V67
    "loongarch64": _Spec(64, False, 258, 0x43, 0x10000, _loongarch64),  # LP64D, OBJ-v1
}

#: QEMU target names with a probe, in scripts/qemu-binfmt-conf.sh order: every entry of
#: that table. Debian 12 also ships qemu-cris-static and qemu-nios2-static; they have no
#: entry in QEMU's binfmt table (upstream has since removed nios2 and deprecated cris),
#: so they get no probe.
PROBE_TARGETS: tuple[str, ...] = tuple(_SPECS)


def _spec(target: str) -> _Spec:
    try:
        return _SPECS[target]
    except KeyError:
        known = ", ".join(PROBE_TARGETS)
        raise UnknownTargetError(
            f"no probe for QEMU target {target!r}; known targets: {known}"
        ) from None


def marker(target: str) -> bytes:
    """The exact bytes the probe for ``target`` writes to stdout."""
    _spec(target)
    return b"binfmtctl-probe:" + target.encode("ascii") + b"\n"


def _headers(spec: _Spec, entry: int, size: int) -> bytes:
    """ELF header + one R+X PT_LOAD mapping the whole ``size``-byte file at ``spec.base``."""
    big, is64 = spec.big_endian, spec.bits == 64
    ehsize, phentsize = (64, 56) if is64 else (52, 32)
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 2 if big else 1, _EV_CURRENT]) + bytes(9)
    addr = "Q" if is64 else "I"  # e_entry, e_phoff, e_shoff
    # e_type e_machine e_version e_entry e_phoff e_shoff e_flags, then e_ehsize e_phentsize
    # e_phnum e_shentsize e_shnum e_shstrndx: program headers right after; no sections.
    ehdr = ident + _pack(big, f"HHI3{addr}I6H", _ET_EXEC, spec.machine, _EV_CURRENT, entry,
                         ehsize, 0, spec.flags, ehsize, phentsize, 1, 0, 0, 0)  # fmt: skip
    flags = _PF_R | _PF_X
    if is64:
        phdr = _pack(big, "2I6Q", _PT_LOAD, flags, 0, spec.base, spec.base, size, size, spec.align)
    else:
        phdr = _pack(big, "8I", _PT_LOAD, 0, spec.base, spec.base, size, size, flags, spec.align)
    return ehdr + phdr


#: targets with a waiting probe (:func:`build_probe` ``wait=True``)
WAITING_TARGETS: tuple[str, ...] = ("aarch64",)


def build_probe(target: str, *, wait: bool = False) -> bytes:
    """The complete ELF image of the probe for ``target`` (pure; no I/O).

    ``wait``: after the marker, block reading one byte from stdin before exiting
    (only the :data:`WAITING_TARGETS`)."""
    spec = _spec(target)
    if wait:
        if target not in WAITING_TARGETS:
            raise UnknownTargetError(
                f"no waiting probe for {target!r}; waiting probes: {', '.join(WAITING_TARGETS)}"
            )
        spec = _Spec(**{**spec.__dict__, "code": _aarch64_wait})
    msg = marker(target)
    headers = (64 + 56) if spec.bits == 64 else (52 + 32)
    code_offset = -(-(headers + len(msg)) // 8) * 8  # code starts 8-aligned after the marker
    code, entry = spec.code(spec.base + code_offset, spec.base + headers, len(msg))
    size = code_offset + len(code)
    image = _headers(spec, spec.base + code_offset + entry, size)
    image += msg.ljust(code_offset - headers, b"\0") + code
    assert len(image) == size
    return image


def write_probe(
    target: str, directory: str | os.PathLike[str], *, wait: bool = False
) -> pathlib.Path:
    """Write the probe to ``<directory>/probe-<target>`` (``probe-<target>-wait`` with
    ``wait``) with mode 0755; return its path. All or nothing: a temporary file in the
    same directory is renamed over the name (never written through a symlink)."""
    image = build_probe(target, wait=wait)
    path = pathlib.Path(directory) / f"probe-{target}{'-wait' if wait else ''}"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(image)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


@dataclass(frozen=True)
class WrittenProbe:
    """``write-probe``: where the probe went and what it prints when the target works."""

    target: str
    path: pathlib.Path
    expected_output: str
    size: int = field(default=0, metadata={"json": False})


def save_probe(target: str, directory: str, *, wait: bool = False) -> WrittenProbe:
    """The ``write-probe`` use case: ``target``'s probe written into ``directory``."""
    from binfmtctl import table
    from binfmtctl.errors import BinfmtctlError, UsageError

    name = table.get_target(target).name
    try:
        image = build_probe(name, wait=wait)
    except UnknownTargetError as e:
        raise UsageError(str(e), fix="binfmtctl write-probe aarch64 --wait") from None
    if not os.path.isdir(directory):
        raise BinfmtctlError(f"{directory} is not a directory", fix=f"mkdir -p {directory}")
    try:
        path = write_probe(name, directory, wait=wait)
    except OSError as e:
        where = pathlib.Path(directory) / f"probe-{name}{'-wait' if wait else ''}"
        raise BinfmtctlError(
            f"cannot write {where}: {e.strerror}",
            fix="pick a directory you can write (binfmtctl write-probe TARGET /tmp)",
        ) from None
    return WrittenProbe(name, path, marker(name).decode().rstrip("\n"), len(image))
