"""`motcua gateway`: HTTP ingestion for center systems (contract events and national-sync dossiers).

A stateless translator: it authenticates the calling system, parses and validates each item
with the worker's own validator (schemas/) or maps it with the national-sync mapping
(service/ingest/national_sync.py), and answers success only after the broker acknowledged
(acks=all, idempotent producer). docs/gateway.md is the integrator's guide.
"""
