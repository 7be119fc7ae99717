package mysql_test

import (
	"context"
	"errors"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/tandemdb/tandem/engine"
	"github.com/tandemdb/tandem/internal/records"
)

// TestBookkeepingFromAnEarlierVersionIsUpgraded: _tandem_pending as an
// earlier version made it (its key column LONGTEXT) cannot take the index
// on its keys (MariaDB: error 1071, the key is too long; MySQL: 1170, text
// in a key needs a length), so a
// database tandem initialised before would not open. records.Create
// changes the column to the current VARCHAR first, keeping the rows.
func TestBookkeepingFromAnEarlierVersionIsUpgraded(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	old := records.Pending
	old.Indexes = nil
	old.Columns = append([]engine.Column(nil), records.Pending.Columns...)
	for i := range old.Columns {
		if old.Columns[i].Name == "pk" {
			old.Columns[i].Size = 0 // LONGTEXT, as before
		}
	}
	made := func(name string) *engine.Conn {
		c := s.open(name)
		create(t, c.Write, &old)
		if _, err := c.Write.Exec("INSERT INTO _tandem_pending (txid, seq, tbl, pk, at) VALUES ('w', 0, 'items', '[1]', 1)"); err != nil {
			t.Fatal(err)
		}
		return c
	}

	// The premise: the index alone is refused on the old table.
	c := made("earlier_plain")
	var me *mysql.MySQLError
	if _, err := c.Write.Exec(eng.CreateTable(&records.Pending)[1]); !errors.As(err, &me) || (me.Number != 1071 && me.Number != 1170) {
		t.Fatalf("the index on the old table: %v; want error 1071 or 1170", err)
	}

	c = made("earlier_upgraded")
	st := records.For(eng)
	if err := st.Create(ctx, c.Write); err != nil {
		t.Fatalf("Create on a database of an earlier version: %v", err)
	}
	var typ string
	if err := c.Write.QueryRow("SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '_tandem_pending' AND COLUMN_NAME = 'pk'").Scan(&typ); err != nil {
		t.Fatal(err)
	}
	if typ != "varchar(512)" {
		t.Errorf("pk is %s after Create; want varchar(512)", typ)
	}
	in := records.IntentOf("x", 0, []records.Key{{Table: "items", PK: "[1]"}})
	if err := st.RecordIntent(ctx, c.Write, in, func(int) bool { return false }); err != nil {
		t.Fatal(err)
	}
	ids, err := st.IntentsNaming(ctx, c.Read, in.TxID)
	if err != nil || len(ids) != 1 || ids[0] != "w" {
		t.Fatalf("IntentsNaming after the upgrade: %v, %v; want the earlier record w", ids, err)
	}
	// Opening again changes nothing and fails nothing.
	if err := st.Create(ctx, c.Write); err != nil {
		t.Fatalf("Create a second time: %v", err)
	}
}
