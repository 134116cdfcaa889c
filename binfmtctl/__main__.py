from binfmtctl.cli import entry_point

entry_point()
