"""shim"""
import sys

from neuro_agmm.deploy.mapping import main

if __name__ == "__main__":
    sys.exit(main())
