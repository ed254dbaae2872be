"""shim"""
import sys

from neuro_agmm.deploy.energy_report import main

if __name__ == "__main__":
    sys.exit(main())
