package dbserver

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// templates holds, per kind, the data directory made once per test binary
// and copied for every server: initdb and mariadb-install-db take about a
// second each, a copy a few tens of milliseconds. It is the package's only
// shared state, and exists only so the work is done once per process.
var templates struct {
	mu       sync.Mutex
	base     string // this process's directory of templates
	password string // User's password on every server of this process
	made     map[Kind]*templateDir
}

type templateDir struct {
	once sync.Once
	dir  string
	err  error
}

// templatePrefix names the per-process directories of templates in the
// temporary directory: templatePrefix + pid + "-" + random.
const templatePrefix = "tandem-dbserver-"

// template returns the template data directory of kind, making it on first
// use, and the password User gets on every server of the process.
//
// One password for all servers lets a client keep its DSN when a Proxy is
// redirected to another server, as after a failover to a replica with the
// same users; it is random, so DSNs still carry a real password.
func template(kind Kind, eng engine, as account) (dir, password string, err error) {
	templates.mu.Lock()
	if templates.made == nil {
		templates.made = map[Kind]*templateDir{}
	}
	td := templates.made[kind]
	if td == nil {
		td = &templateDir{}
		templates.made[kind] = td
	}
	if templates.base == "" {
		base, err := makeTemplateBase(as)
		if err != nil {
			templates.mu.Unlock()
			return "", "", err
		}
		templates.base = base
		templates.password = randomPassword()
	}
	base, password := templates.base, templates.password
	templates.mu.Unlock()

	td.once.Do(func() {
		dir := filepath.Join(base, string(kind))
		if err := eng.initDataDir(dir, as); err != nil {
			td.err = fmt.Errorf("make the %s template data directory: %w", kind, err)
			return
		}
		td.dir = dir
	})
	return td.dir, password, td.err
}

// makeTemplateBase makes this process's directory for templates. A test
// binary cannot remove it when it exits (the package has no hook there), so
// each new one removes those of processes that have exited.
func makeTemplateBase(as account) (string, error) {
	removeStaleTemplates()
	base, err := os.MkdirTemp("", templatePrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", fmt.Errorf("make the template directory: %w", err)
	}
	if err := as.own(base); err != nil {
		return "", fmt.Errorf("make the template directory: %w", err)
	}
	return base, nil
}

func removeStaleTemplates() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), templatePrefix+"*-*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), templatePrefix)
		pid, err := strconv.Atoi(rest[:strings.IndexByte(rest, '-')])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			os.RemoveAll(d)
		}
	}
}

// RemoveTemplates removes this process's template data directories. A
// program that is not a test calls it once no server of its will start
// again (a test binary's are removed by the next one).
func RemoveTemplates() {
	templates.mu.Lock()
	defer templates.mu.Unlock()
	if templates.base != "" {
		os.RemoveAll(templates.base)
	}
	templates.base, templates.made = "", nil
}

// copyTree copies the directory tree src to dst (which must not exist),
// keeping modes and, when running as root, owners.
func copyTree(src, dst string) error {
	root := os.Geteuid() == 0
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			if err := os.Mkdir(to, fi.Mode().Perm()); err != nil {
				return err
			}
			// Mkdir's mode went through the umask.
			if err := os.Chmod(to, fi.Mode().Perm()); err != nil {
				return err
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, to); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			if err := copyFile(path, to, fi.Mode().Perm()); err != nil {
				return err
			}
		default:
			return nil // sockets, pipes: nothing a server needs
		}
		if !root {
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		return os.Lchown(to, int(st.Uid), int(st.Gid))
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	// OpenFile's mode went through the umask.
	return os.Chmod(dst, perm)
}

func randomPassword() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}
