import sys

from salespulse.cli import main

sys.exit(main())
