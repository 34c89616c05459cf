import sys

from ekuiper._cli import main

sys.exit(main())
