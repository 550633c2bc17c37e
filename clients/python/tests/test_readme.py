"""The snippets of clients/python/README.md run as written, in order, with
`dsn` set to the test server (so the README cannot rot)."""

import os
import re
import unittest

import psycopg

from support import DSN, need_server

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")


@need_server
class TestReadme(unittest.TestCase):
    def test_snippets_run(self):
        with open(README) as f:
            blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
        self.assertGreaterEqual(len(blocks), 5)
        with psycopg.connect(DSN, autocommit=True) as admin:
            # The README's "as an administrator, once".
            admin.execute("SELECT lockctl.create_pool('concert', 100) "
                          "WHERE NOT EXISTS (SELECT FROM lockctl.pool_status WHERE resource = 'concert')")
            scope = {"dsn": DSN, "__name__": "readme"}
            for block in blocks:
                exec(compile(block, README, "exec"), scope)
            self.assertIsInstance(scope["new_version"], int)
            self.assertIsInstance(scope["hold"], int)
            self.assertEqual(admin.execute("SELECT count(*) FROM report WHERE body = 'async'").fetchone()[0], 1)
            scope["conn"].close()
            self.assertEqual(admin.execute("SELECT count(*) FROM payments").fetchone()[0], 1)
            admin.execute("DROP TABLE report, account, payments")
            admin.execute("SELECT lockctl.drop_pool('concert')")


if __name__ == "__main__":
    unittest.main()
