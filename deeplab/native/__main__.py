"""`python -m deeplab.native`: build the C helpers now and print the library's path."""

import sys

from deeplab.native import main

sys.exit(main())
