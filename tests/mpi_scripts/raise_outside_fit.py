"""Rank 1 raises outside any chainrule call while rank 0 waits in a collective: after
`dist.init()` the job must still end at once with rank 1's message (init's excepthook aborts)."""

import chainrule.distributed as dist

dist.init()
if dist.rank() == 1:
    raise ValueError("bad input file on rank 1")
dist.barrier()        # rank 0 waits here for a peer that will never come
dist.barrier()
print("unreachable: rank", dist.rank())
