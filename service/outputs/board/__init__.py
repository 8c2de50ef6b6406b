"""The center's live board (`motcua board`): one page over every worker, exact or marked
incomplete. `gather` asks the workers and sums them, `server` serves the page and its JSON,
`targets` holds the figures the seeds quote."""
