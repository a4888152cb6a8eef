-- A test result is written twice: when it is reported, and once more when
-- its run's history analysis stores its change, age, instability and
-- relevancy. With full pages every such update put the new version of the
-- row on another page and a new entry in each of the table's four indexes:
-- 10,000 results took about 150 ms. With half of each page kept free the
-- new versions stay on their page (a HOT update: no index entries), about
-- 40 ms (BENCHMARKS.md, finding 41). Pages written before this keep their
-- fill until they are rewritten (VACUUM FULL).
ALTER TABLE test_case_results SET (fillfactor = 50);
