package dbserver

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// account is the operating-system user a server runs as.
type account struct {
	uid, gid int
	name     string
	// cred is nil when the servers run as the current user.
	cred *syscall.Credential
}

// runAccount returns nobody (group nogroup) when running as root, since
// PostgreSQL refuses to run as root, and the current user otherwise.
func runAccount() (account, error) {
	if os.Geteuid() != 0 {
		return account{uid: os.Geteuid(), gid: os.Getegid(), name: "current user"}, nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		return account{}, fmt.Errorf("running as root, the servers run as user nobody: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if g, err := user.LookupGroup("nogroup"); err == nil {
		gid, _ = strconv.Atoi(g.Gid)
	}
	return account{
		uid: uid, gid: gid, name: "nobody",
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
	}, nil
}

// own hands path, not its contents, to the account.
func (a account) own(path string) error {
	if a.cred == nil {
		return nil
	}
	return os.Lchown(path, a.uid, a.gid)
}

// traverse lets the account pass through the directories above dir that are
// inside the temporary directory (t.TempDir makes them 0700, root's).
func (a account) traverse(dir string) error {
	if a.cred == nil {
		return nil
	}
	top := os.Getenv("GOTMPDIR")
	if top == "" {
		top = os.TempDir()
	}
	top = filepath.Clean(top)
	for d := filepath.Dir(dir); strings.HasPrefix(d, top+"/"); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
				return fmt.Errorf("let user %s through %s: %w", a.name, d, err)
			}
		}
	}
	return nil
}

// process is a started server process and, for PostgreSQL, its children:
// the backends. They make themselves process group leaders (setsid), so the
// harness signals the tree of processes, not a process group.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited; err is set then
	err  error
}

// startProcess starts cmd as the account, with home directory home.
func startProcess(cmd *exec.Cmd, as account, home string) (*process, error) {
	cmd.Env = serverEnv(home)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Away from the terminal's signals (a ^C goes to the test, which
		// then kills its servers).
		Setpgid:    true,
		Credential: as.cred,
		// A test binary that dies (a panic, -timeout) takes its servers
		// with it; PostgreSQL's backends exit when their postmaster does.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// serverEnv is the test's environment without the variables that would
// point a server or its tools elsewhere.
func serverEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "MYSQL") ||
			strings.HasPrefix(kv, "MARIADB") || strings.HasPrefix(kv, "ETCD") ||
			strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home, "LC_ALL=C")
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signalTree sends sig to the server process, then to its descendants, and
// returns the processes signalled. Stopped first, the server forks no new
// ones meanwhile.
func (p *process) signalTree(sig syscall.Signal) ([]int, error) {
	leader := p.cmd.Process.Pid
	if err := syscall.Kill(leader, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) && p.exited() {
			return nil, nil
		}
		return nil, err
	}
	pids := descendants(leader)
	for _, pid := range pids {
		syscall.Kill(pid, sig) // it may have exited since: fine
	}
	return append(pids, leader), nil
}

// kill stops the whole tree, kills it with SIGKILL and waits until every
// process of it is gone.
func (p *process) kill() error {
	// Stopped, no process forks or exits (which would reparent its
	// children out of the tree) until the SIGKILLs; the leader is killed
	// last, for the same reason.
	pids, err := p.signalTree(syscall.SIGSTOP)
	if err != nil {
		return err // not ours to kill (EPERM): waiting would hang
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	<-p.done
	waitGone(pids)
	return nil
}

// waitGone waits until none of pids is alive. A PostgreSQL backend that
// outlives its postmaster keeps the old shared memory attached, and a new
// postmaster on the same data directory refuses to start until it is gone.
func waitGone(pids []int) {
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// alive reports whether process pid exists and is not a zombie. Zombies hold
// no resources, and whether they are reaped depends on the container's init.
func alive(pid int) bool {
	st, ok := readStat(pid)
	return ok && st.state != 'Z' && st.state != 'X'
}

type procStat struct {
	state byte
	ppid  int
}

// readStat reads /proc/PID/stat: "pid (comm) state ppid ...", where comm
// may hold spaces and parentheses.
func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return procStat{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	return procStat{state: f[0][0], ppid: ppid}, true
}

// descendants returns the living descendants of process pid.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(child); ok && st.state != 'Z' && st.state != 'X' {
			children[st.ppid] = append(children[st.ppid], child)
		}
	}
	var out []int
	for queue := children[pid]; len(queue) > 0; queue = queue[1:] {
		out = append(out, queue[0])
		queue = append(queue, children[queue[0]]...)
	}
	return out
}

// dialer returns which of pids dialed conn, a TCP connection accepted on
// loopback, or 0 when none did (or it cannot tell). The dialer's end of
// the connection is the socket in /proc/net/tcp whose local port is conn's
// remote port and whose remote port is conn's local one; its owner has that
// socket among its open files.
func dialer(conn net.Conn, pids []int) int {
	local, ok1 := conn.LocalAddr().(*net.TCPAddr)
	remote, ok2 := conn.RemoteAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return 0
	}
	inode := socketInode(remote.Port, local.Port)
	if inode == "" {
		return 0
	}
	want := "socket:[" + inode + "]"
	for _, pid := range pids {
		dir := "/proc/" + strconv.Itoa(pid) + "/fd"
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if target, err := os.Readlink(dir + "/" + fd.Name()); err == nil && target == want {
				return pid
			}
		}
	}
	return 0
}

// socketInode returns the inode of the TCP socket whose local port is local
// and whose remote port is remote, or "" when there is none.
func socketInode(local, remote int) string {
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		// sl local_address rem_address st ... uid timeout inode, the
		// addresses as hex IP:PORT.
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) >= 10 && hexPort(f[1]) == local && hexPort(f[2]) == remote {
				return f[9]
			}
		}
	}
	return ""
}

func hexPort(addr string) int {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return -1
	}
	port, err := strconv.ParseUint(addr[i+1:], 16, 16)
	if err != nil {
		return -1
	}
	return int(port)
}
