"""Where systemd and binfmt-support keep what registers binfmt_misc entries at boot: the
one list of those directories (absolute paths; place them under an image root with
:func:`binfmtctl.persist.paths.in_root`)."""

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
BINFMTS_ADMIN_DIR = "/var/lib/binfmts"  # update-binfmts' database: what binfmt-support enables
BINFMTS_IMPORT_DIR = "/usr/share/binfmts"  # packages' format files, imported into the database
