"""Where systemd and binfmt-support keep what registers binfmt_misc entries at boot: the
one list of those directories, which ``persist`` (writing, listing boot sources) and
``doctor`` (judging) both use. Paths are absolute, as the booted system sees them; place
them under an image root with :func:`binfmtctl.persist.paths.in_root` or look them up
with :class:`binfmtctl.rootfs.Root` (never ``os.path.join``, which would follow the
image's links out of it)."""

#: binfmt.d directories, highest priority first (systemd's ``CONF_PATHS("binfmt.d")``)
BINFMT_D_DIRS = (
    "/etc/binfmt.d",
    "/run/binfmt.d",
    "/usr/local/lib/binfmt.d",
    "/usr/lib/binfmt.d",
    "/lib/binfmt.d",
)
#: where ``systemctl enable`` and binfmtctl install units and their ``.wants/`` links
UNIT_DIR = "/etc/systemd/system"
#: unit directories systemd loads units from, highest priority first
UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
)
#: where a unit is masked (a symlink to /dev/null) or enabled by an administrator
ADMIN_UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system")
SYSTEMD_BINFMT = "systemd-binfmt.service"
BINFMT_SUPPORT = "binfmt-support.service"
BINFMTS_ADMIN_DIR = "/var/lib/binfmts"  # update-binfmts' database: what binfmt-support enables
BINFMTS_IMPORT_DIR = "/usr/share/binfmts"  # packages' format files, imported into the database
