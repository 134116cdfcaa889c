from binfmtctl.cli import main

main()
