-- tracking-delete: forget one message (its record, index entries and bookkeeping).
--
-- No KEYS (the keys are built from the prefix: see tracking-common.lua).
-- ARGV[1]  prefix P
-- ARGV[2]  message id
--
-- Returns 1.

forget(ARGV[1], ARGV[2])
return 1
