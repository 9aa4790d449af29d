"""What the tests share, and nothing else: test modules import from here, never from each
other, and conftest.py holds only the fixtures, built from these helpers.

- ``world``: the storage a serving test fills and serves (folder or moto), its test keyring
- ``vectors``: the spec's vectors (``tests/data/vectors.json``) and the keys they name
- ``processes``: ``edge`` as a real process: its environment, readiness, stop, memory
- ``servers``: moto's S3, s3rver and uvicorn on loopback ports; sockets and files held open
- ``client``: requests as a test sends them, and the shape of an error answer
- ``nginx``: real nginx running a shipped config from deploy/nginx/
- ``console``: the docs' ``$ `` commands, run as written (free ports, a user who is not
  root for the commands that must need none)
- ``faults``, ``stores``, ``tls``, ``canned``: a fault proxy in front of moto, loopback
  stores that play canned S3 answers, a test certificate authority
- ``fault_rig``, ``s3_faults``, ``folder_faults``: every row of the storage failure table
  produced by a real fault
- ``corpus``, ``strategies``: the bad-input corpus and hypothesis strategies
- ``artifacts``: the figures tests record for docs/reliability.md
- ``records``: requests as the observer and the access log see them
- ``auth``: what the /auth tests and the nginx auth_request tests share
- ``clock``: a clock the test sets
- ``stranger``, ``raw_http``: a stranger's requests against canaried private objects, and
  a raw client for kept-alive, pipelined and smuggled requests
- ``sign_vectors.mjs``, ``sign_and_fetch.mjs``: the Node signer, driven by its tests
"""
