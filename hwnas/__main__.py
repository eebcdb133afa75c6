"""`python -m hwnas` (and `torchrun -m hwnas`) runs the same CLI as `hwnas`."""

from hwnas.cli import main

if __name__ == "__main__":
    main()
