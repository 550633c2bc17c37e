-- One calendar, sold by the hour: the plain design (a bookings table with
-- an exclusion constraint, as the PostgreSQL manual has it, with
-- btree_gist for the room) and lockctl calendars of capacity 1 and 3.
-- Every transaction takes the next hour of its own sequence, so nothing
-- overlaps and nothing is refused: what is measured is the cost of a
-- booking that succeeds, with the overlap check on every one.
CREATE EXTENSION IF NOT EXISTS btree_gist;
DROP TABLE IF EXISTS bench_cal_bookings;
DROP SEQUENCE IF EXISTS bench_cal_plain_seq, bench_cal_plain2_seq, bench_cal_hold_seq,
    bench_cal_confirm_seq, bench_cal_three_seq;
CREATE SEQUENCE bench_cal_plain_seq;
CREATE SEQUENCE bench_cal_plain2_seq START 100000000;
CREATE SEQUENCE bench_cal_hold_seq;
CREATE SEQUENCE bench_cal_confirm_seq START 100000000;
CREATE SEQUENCE bench_cal_three_seq;
-- What an application keeps for each booking, with the index its cleanup
-- job needs: the same shape as lockctl.range_reservations.
CREATE TABLE bench_cal_bookings (
    id bigserial PRIMARY KEY,
    room integer NOT NULL,
    during tstzrange NOT NULL,
    holder text,
    status text NOT NULL DEFAULT 'held',
    created timestamptz NOT NULL DEFAULT now(),
    expires timestamptz NOT NULL,
    EXCLUDE USING gist (room WITH =, during WITH &&) WHERE (status IN ('held', 'confirmed'))
);
CREATE INDEX ON bench_cal_bookings (expires) WHERE status = 'held';
SELECT lockctl.drop_calendar(resource) FROM lockctl.calendar_status WHERE resource IN ('bench_cal', 'bench_cal3');
SELECT lockctl.create_calendar('bench_cal');
SELECT lockctl.create_calendar('bench_cal3', 3);
VACUUM ANALYZE bench_cal_bookings;
