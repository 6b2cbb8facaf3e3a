"""`python -m fsf.cluster up|down|status|kill-node`: the local multi-node cluster from a shell
(see `fsf.cluster.cli`, `fsf.cluster.local` and cluster/local/)."""

import sys

from fsf.cluster.cli import main

sys.exit(main())
