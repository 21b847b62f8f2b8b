from nsep.cli import main

main()
