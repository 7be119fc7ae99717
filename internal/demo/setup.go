package demo

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"

	_ "github.com/ncruces/go-sqlite3/driver" // database/sql driver "sqlite3", to lock a file

	"github.com/tandemdb/tandem"
)

// DefaultConfig is the embedded default: two SQLite files, foo and bar.
const DefaultConfig = `# tandem demo: two SQLite files kept identical.
primary: foo
datasources:
  - name: foo
    driver: sqlite
    dsn: foo.db
  - name: bar
    driver: sqlite
    dsn: bar.db
`

// Setup creates dir and its tandem.yaml (the embedded default) if absent,
// and returns the config's path.
func Setup(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "tandem.yaml")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(path, []byte(DefaultConfig), 0o644); err != nil {
			return "", err
		}
	}
	return path, nil
}

func findOrCreatePublisher(ctx context.Context, tx *tandem.Tx, name string) (*Publisher, error) {
	found, err := tandem.Find[Publisher](ctx, tx, tandem.Eq("name", name))
	if err != nil || len(found) > 0 {
		if err != nil {
			return nil, err
		}
		return &found[0], nil
	}
	p := &Publisher{Name: name}
	return p, tx.Save(ctx, p)
}

func randomSuffix() string { return rand.Text()[:8] }
