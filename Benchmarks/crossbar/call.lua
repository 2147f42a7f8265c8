-- wrk script for flowgate-bench: the Crossbar.io peer's HTTP caller bridge, calling bench.echo
-- with the same device object that flowgate's OPEN returns.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"procedure":"bench.echo","args":[{"id":"bench-1","created":"2026-01-01T00:00:00.000Z","updated":"2026-01-01T00:00:00.000Z","rev":"abcdefghij","name":"core-sw","serial":"SN-0001","site":"HQ","ports":48}]}'
