'use strict';
// The two drivers the tests run with, connected through the libpq
// environment variables (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD),
// each loaded from node_modules or NODE_PATH; a driver that cannot be loaded
// is reported as missing (its tests are skipped, and said so).

function load(name) {
  try {
    return require(name);
  } catch (e) {
    return null;
  }
}

const pg = load('pg');
const postgresJs = load('postgres');

const drivers = {
  pg: pg && {
    open: (extra = {}) => {
      const pool = new pg.Pool({ max: 12, ...extra });
      pool.on('error', () => {});     // an idle connection the tests kill
      return pool;
    },
    close: (db) => db.end(),
  },
  postgres: postgresJs && {
    open: (extra = {}) => postgresJs({ max: 12, onnotice: () => {}, ...extra }),
    close: (db) => db.end({ timeout: 5 }),
  },
};

module.exports = { drivers, pg, postgresJs };
