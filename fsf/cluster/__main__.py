"""`python -m fsf.cluster up|down|status|kill-node`: the local multi-node cluster from a shell
(see `fsf.cli.cluster`, `fsf.cluster.local` and cluster/local/)."""

import sys

from fsf.cli.cluster import main

sys.exit(main())
