import sys

from flightdelay.cli import main

sys.exit(main())
