from binfmtctl.fastpath import entry_point

entry_point()
