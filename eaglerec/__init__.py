"""EagleRec's shared package: settings, the contracts between stages (contracts/), and the data-side stages (ingest,
feature build, Feast, near-line, export). Every folder may import it; it imports none of them."""
