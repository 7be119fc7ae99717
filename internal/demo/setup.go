package demo

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"

	"github.com/tandemdb/tandem"
)

// DefaultConfig is the embedded default: two SQLite files, foo.db and
// bar.db, each reached through a link in mnt/ (Setup makes them), as a
// file on a mount would be: the dashboard takes a datasource offline by
// pointing its link away, as a lost mount does.
const DefaultConfig = `# tandem demo: two SQLite files kept identical.
# Each is reached through a link in mnt/, so that the dashboard can take
# it offline as a lost mount would.
primary: foo
datasources:
  - name: foo
    driver: sqlite
    dsn: mnt/foo.db
  - name: bar
    driver: sqlite
    dsn: mnt/bar.db
`

// Setup creates dir and its tandem.yaml (the embedded default) if absent,
// with the default's files and their links, and returns the config's path.
func Setup(dir string) (string, error) {
	if err := os.MkdirAll(filepath.Join(dir, "mnt"), 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "tandem.yaml")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(path, []byte(DefaultConfig), 0o644); err != nil {
			return "", err
		}
	}
	for _, name := range []string{"foo", "bar"} {
		file := filepath.Join(dir, name+".db")
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			// An empty file is an empty database; SQLite creates none
			// through a link whose target does not exist.
			if err := os.WriteFile(file, nil, 0o644); err != nil {
				return "", err
			}
		}
		link := filepath.Join(dir, "mnt", name+".db")
		if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
			if err := os.Symlink(filepath.Join("..", name+".db"), link); err != nil {
				return "", err
			}
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
