"""Training entry point (4-stage curriculum). Not implemented yet: this script only says so."""

import sys


def main():
    sys.exit("train.py: training of the VITA-Audio curriculum is not implemented yet (see the open training issue).")


if __name__ == "__main__":
    main()
