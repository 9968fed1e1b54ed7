from matrixhpc.cli import main

main()
