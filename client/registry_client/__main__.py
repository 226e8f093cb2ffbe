"""`python -m registry_client` is `regctl`."""

import sys

from registry_client.cli import main

sys.exit(main())
