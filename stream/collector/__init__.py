"""The HTTP collector: Segment/RudderStack API, pixel and webhooks in, Kafka records out.

Layers, each importing only those below it: `app` (routes, wiring, `run`) → the route modules
`pixel` and `webhooks` (and `segment` for the Segment API) → `service` (the shared `Collector`)
and `responses` (error answers) → helpers (`limits`, `mapping`, `producer`, `shared`, …).
This package imports none of them, so importing a route module never loads `app`.
"""
