-- label: read, then UPDATE ... SET version = $m WHERE id = $1 AND version = $n (ORM-shaped)
-- What Hibernate, Rails, Sequelize and SQLAlchemy send.
\set id :client_id * 3000 + random(1, 3000)
SELECT balance, version FROM bench_vorm_orm WHERE id = :id \gset
\set next :version + 1
UPDATE bench_vorm_orm SET balance = :balance + 1, version = :next WHERE id = :id AND version = :version;
