"""Services: the use cases the blueprints, the CLI and the jobs call; no Flask, no worker code."""
