-- label: read, then lockctl.update_versioned()
\set id :client_id * 3000 + random(1, 3000)
SELECT balance, version FROM bench_version_fn WHERE id = :id \gset
SELECT lockctl.update_versioned('bench_version_fn', :id, :version, jsonb_build_object('balance', :balance + 1));
