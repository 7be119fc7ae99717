package dbserver

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Raft timing for tests: a lost leader is replaced, and a lost quorum is
// noticed, within about a second. etcd's defaults (100 ms, 1 s) suit
// networks; loopback needs no more.
const (
	etcdHeartbeat       = 50 * time.Millisecond
	etcdElectionTimeout = 500 * time.Millisecond
)

// findEtcd returns the etcd server binary, or says which Debian package to
// install.
func findEtcd() (string, error) {
	if bin := findBinary("/usr/bin/etcd", "etcd"); bin != "" {
		return bin, nil
	}
	return "", errors.New("dbserver: etcd not found (looked in /usr/bin and on PATH); " +
		"install the Debian package etcd-server (apt-get install etcd-server)")
}

// RequireEtcd skips the test when the etcd server binary is missing. With
// TANDEM_FAIL_ON_SKIP=1 it fails the test instead, naming the Debian package
// to install.
func RequireEtcd(t testing.TB) {
	t.Helper()
	_, err := findEtcd()
	skipOn(t, err)
}

// EtcdCluster is an etcd cluster of a test: its members run /usr/bin/etcd,
// each with its data directory in a temporary directory of the test and its
// client and peer ports on free loopback ports. Its methods, and its
// members', are safe for concurrent use.
//
// Every member's peer traffic passes through a Proxy of its own, which is
// the peer address the member advertises. etcd members talk over
// connections that either side may have dialed (a member reads a peer's
// messages over a stream it dialed to that peer, and posts its own over
// connections it dials), so cutting one proxy cuts nothing: each proxy
// finds which member dialed a connection (by the socket's owner in /proc)
// and refuses the links of an isolated member in both directions, while
// the other members keep theirs. See [EtcdMember.Isolate].
type EtcdCluster struct {
	bin     string
	token   string
	members []*EtcdMember

	mu       sync.Mutex
	isolated map[string]bool // member names
}

// EtcdMember is one member of an EtcdCluster, running or not.
type EtcdMember struct {
	cluster    *EtcdCluster
	name       string
	dir        string // holds data/ and etcd.log
	clientPort int
	peerPort   int    // where the member listens for peers
	peer       *Proxy // in front of peerPort: the address other members dial

	mu       sync.Mutex
	proc     *process // nil when not running
	logStart int64    // where the output of proc begins in the log
}

// StartEtcd starts a new etcd cluster of n members for the test, as
// [RunEtcd] does in a temporary directory of the test, and kills every
// member and removes its files when the test ends. It skips the test, as
// RequireEtcd does, when etcd is missing.
func StartEtcd(t testing.TB, n int) *EtcdCluster {
	t.Helper()
	RequireEtcd(t)
	c, err := RunEtcd(t.TempDir(), n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// RunEtcd starts a new etcd cluster of n members (3 is the smallest that
// survives the loss of a member), each in a directory of its own under
// dir, for a program that is not a test, and waits until every member
// answers its health check: a leader is elected and each member serves a
// linearizable read. The caller closes it.
func RunEtcd(dir string, n int) (_ *EtcdCluster, err error) {
	if n < 1 {
		return nil, fmt.Errorf("start etcd: a cluster of %d members", n)
	}
	bin, err := findEtcd()
	if err != nil {
		return nil, err
	}
	c := &EtcdCluster{bin: bin, token: "tandem-test-" + rand.Text(), isolated: map[string]bool{}}
	defer func() {
		if err != nil {
			c.Close()
			err = fmt.Errorf("start etcd: %w", err)
		}
	}()
	c.members = make([]*EtcdMember, n)
	for i := range c.members {
		m := &EtcdMember{cluster: c, name: "m" + strconv.Itoa(i), dir: filepath.Join(dir, "etcd-m"+strconv.Itoa(i))}
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return nil, err
		}
		if err := m.choosePorts(); err != nil {
			return nil, err
		}
		c.members[i] = m
	}
	// Once the members are known: a proxy asks for them at once.
	for _, m := range c.members {
		m.peer, err = listen(m.peerAddr(), c.dialerName, func(from string) bool {
			return c.cutOff(from, m.name)
		})
		if err != nil {
			return nil, err
		}
	}
	for _, m := range c.members {
		if err := m.launch(); err != nil {
			return nil, err
		}
	}
	for _, m := range c.members {
		// The ports were free when chosen but may be taken before etcd
		// binds them; then the member tries others (its peer proxy, the
		// address the others know, stays).
		for attempt := 1; ; attempt++ {
			err := m.waitListening()
			if err == nil {
				break
			}
			if !errors.Is(err, errPortInUse) || attempt == 5 {
				return nil, err
			}
			if err := m.choosePorts(); err != nil {
				return nil, err
			}
			m.peer.Redirect(m.peerAddr())
			if err := m.launch(); err != nil {
				return nil, err
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := c.WaitHealthy(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Close kills every member and closes the peer proxies. The members'
// directories stay.
func (c *EtcdCluster) Close() error {
	var errs []error
	for _, m := range c.members {
		if m == nil {
			continue
		}
		errs = append(errs, m.Kill())
		if m.peer != nil {
			m.peer.Close()
		}
	}
	return errors.Join(errs...)
}

// WaitHealthy waits until every member answers its health check (a
// leader, and a linearizable read served), or ctx ends.
func (c *EtcdCluster) WaitHealthy(ctx context.Context) error {
	for _, m := range c.members {
		if err := m.waitHealthy(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Members returns the number of members.
func (c *EtcdCluster) Members() int { return len(c.members) }

// Endpoints returns every member's client address, "127.0.0.1:port", in
// member order, for a client (go.etcd.io/etcd/client/v3's Config.Endpoints).
func (c *EtcdCluster) Endpoints() []string {
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.Endpoint()
	}
	return eps
}

// Member returns member i (from 0), whose client address is Endpoints()[i].
func (c *EtcdCluster) Member(i int) *EtcdMember { return c.members[i] }

// cutOff reports whether a peer connection that member from dialed to member
// to must be refused: when either is isolated. A connection whose dialer is
// unknown ("") is refused to an isolated member only.
func (c *EtcdCluster) cutOff(from, to string) bool {
	if from == to {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.isolated[from] || c.isolated[to]
}

// dialerName returns the name of the member that dialed conn, or "".
func (c *EtcdCluster) dialerName(conn net.Conn) string {
	byPID := map[int]string{}
	var pids []int
	for _, m := range c.members {
		m.mu.Lock()
		if m.proc != nil {
			pid := m.proc.cmd.Process.Pid
			byPID[pid] = m.name
			pids = append(pids, pid)
		}
		m.mu.Unlock()
	}
	return byPID[dialer(conn, pids)]
}

// Name returns the member's name in the cluster: m0, m1, ...
func (m *EtcdMember) Name() string { return m.name }

// Endpoint returns the member's client address, "127.0.0.1:port".
func (m *EtcdMember) Endpoint() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.clientPort))
}

// Dir returns the directory holding the member's data directory ("data")
// and its log ("etcd.log").
func (m *EtcdMember) Dir() string { return m.dir }

// Running reports whether the member's process is alive (paused counts as
// alive).
func (m *EtcdMember) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc != nil && !m.proc.exited()
}

// Kill kills the member with SIGKILL, as a crash does, and waits until it
// has exited. Kill on a member that is not running does nothing.
func (m *EtcdMember) Kill() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.proc
	if p == nil {
		return nil
	}
	m.proc = nil
	if err := p.kill(); err != nil {
		return fmt.Errorf("kill etcd member %s: %w", m.name, err)
	}
	return nil
}

// Pause stops the member with SIGSTOP: it answers nobody, yet the kernel
// still accepts connections on its ports. Kill and the test's end work on a
// paused member.
func (m *EtcdMember) Pause() error { return m.signal(syscall.SIGSTOP) }

// Resume continues a paused member with SIGCONT.
func (m *EtcdMember) Resume() error { return m.signal(syscall.SIGCONT) }

func (m *EtcdMember) signal(sig syscall.Signal) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil || m.proc.exited() {
		return fmt.Errorf("signal %v to etcd member %s: not running", sig, m.name)
	}
	if _, err := m.proc.signalTree(sig); err != nil {
		return fmt.Errorf("signal %v to etcd member %s: %w", sig, m.name, err)
	}
	return nil
}

// Isolate cuts the member off from every other member, both ways, as a
// network partition does: it keeps running and serving its clients, but
// hears no peer and no peer hears it. Its clients' connections are not
// touched (a client reaches it, and it alone, on Endpoint). The member stays
// isolated across Kill and Restart, until Rejoin.
func (m *EtcdMember) Isolate() { m.cluster.setIsolated(m.name, true) }

// Rejoin ends the member's isolation.
func (m *EtcdMember) Rejoin() { m.cluster.setIsolated(m.name, false) }

func (c *EtcdCluster) setIsolated(name string, isolated bool) {
	c.mu.Lock()
	c.isolated[name] = isolated
	c.mu.Unlock()
	for _, m := range c.members {
		m.peer.closeRefused()
	}
}

// Restart starts the member again after Kill, as Relaunch does, and fails
// the test when it cannot.
func (m *EtcdMember) Restart(t testing.TB) {
	t.Helper()
	if err := m.Relaunch(); err != nil {
		t.Fatal(err)
	}
}

// Relaunch starts the member again after Kill, on its data directory and
// ports, and waits until it listens on them. Whether it then serves
// requests depends on the cluster: a member serves once it has reached a
// quorum (it joins through the cluster's log), so Relaunch does not wait
// for that.
func (m *EtcdMember) Relaunch() error {
	if m.Running() {
		return fmt.Errorf("restart etcd member %s: still running", m.name)
	}
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		if err = m.launch(); err == nil {
			err = m.waitListening()
		}
		if err == nil || !errors.Is(err, errPortInUse) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("restart etcd member %s: %w", m.name, err)
	}
	return nil
}

// choosePorts picks free client and peer ports for the member.
func (m *EtcdMember) choosePorts() error {
	var err error
	if m.clientPort, err = freePort(); err != nil {
		return err
	}
	m.peerPort, err = freePort()
	return err
}

func (m *EtcdMember) peerAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.peerPort))
}

// args are etcd's flags for the member. On a data directory that holds a
// member already (a restart), etcd ignores the --initial-* flags.
func (m *EtcdMember) args() []string {
	var cluster []string
	for _, o := range m.cluster.members {
		cluster = append(cluster, o.name+"=http://"+o.peer.Addr())
	}
	client := "http://" + m.Endpoint()
	return []string{
		"--name", m.name,
		"--data-dir", filepath.Join(m.dir, "data"),
		"--listen-client-urls", client,
		"--advertise-client-urls", client,
		"--listen-peer-urls", "http://" + m.peerAddr(),
		"--initial-advertise-peer-urls", "http://" + m.peer.Addr(),
		"--initial-cluster", strings.Join(cluster, ","),
		"--initial-cluster-token", m.cluster.token,
		"--initial-cluster-state", "new",
		"--heartbeat-interval", strconv.Itoa(int(etcdHeartbeat / time.Millisecond)),
		"--election-timeout", strconv.Itoa(int(etcdElectionTimeout / time.Millisecond)),
		"--logger", "zap",
		"--log-outputs", "stderr",
	}
}

// launch starts the member's process; it does not wait for it.
func (m *EtcdMember) launch() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil && !m.proc.exited() {
		return fmt.Errorf("etcd member %s is already running", m.name)
	}
	log, err := os.OpenFile(m.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the child holds its own copy
	fmt.Fprintf(log, "---- dbserver: starting etcd member %s on client port %d, peer port %d at %s\n",
		m.name, m.clientPort, m.peerPort, time.Now().Format(time.RFC3339Nano))
	start, _ := log.Seek(0, io.SeekEnd)

	cmd := exec.Command(m.cluster.bin, m.args()...)
	cmd.Stdout, cmd.Stderr = log, log
	// etcd runs as whoever runs the tests, root included.
	p, err := startProcess(cmd, account{uid: os.Geteuid(), gid: os.Getegid(), name: "current user"}, m.dir)
	if err != nil {
		return fmt.Errorf("run %s: %w", cmd.Path, err)
	}
	m.proc, m.logStart = p, start
	return nil
}

// waitHealthy waits until the member's /health says true: it has a leader
// and serves a linearizable read.
func (m *EtcdMember) waitHealthy(ctx context.Context) error {
	return m.waitUntil(ctx, func(ctx context.Context) error {
		var health struct {
			Health string `json:"health"`
		}
		if err := m.getJSON(ctx, "/health", &health); err != nil {
			return err
		}
		if health.Health != "true" {
			return fmt.Errorf("/health says %q", health.Health)
		}
		return nil
	})
}

// waitListening waits until the member accepts TCP connections on its
// client port, which it opens, after its peer port, before it joins the
// cluster: from then on it cannot fail for a port in use.
func (m *EtcdMember) waitListening() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	return m.waitUntil(ctx, func(ctx context.Context) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", m.Endpoint())
		if err == nil {
			conn.Close()
		}
		return err
	})
}

// waitUntil polls ready until it succeeds, the member's process exits
// (errPortInUse when it could not listen) or ctx ends.
func (m *EtcdMember) waitUntil(ctx context.Context, ready func(context.Context) error) error {
	m.mu.Lock()
	p, logStart := m.proc, m.logStart
	m.mu.Unlock()
	if p == nil {
		return fmt.Errorf("etcd member %s is not running", m.name)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-p.done:
			m.mu.Lock()
			if m.proc == p {
				m.proc = nil
			}
			m.mu.Unlock()
			logged := m.logSince(logStart)
			if strings.Contains(strings.ToLower(logged), "address already in use") {
				return fmt.Errorf("etcd member %s on ports %d, %d: %w", m.name, m.clientPort, m.peerPort, errPortInUse)
			}
			return fmt.Errorf("etcd member %s exited while starting (%v); its log ends:\n%s",
				m.name, p.err, tail(logged, 30))
		case <-ctx.Done():
			return fmt.Errorf("etcd member %s not ready in time (last: %v); its log ends:\n%s",
				m.name, last, tail(m.logSince(logStart), 30))
		case <-tick.C:
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			last = ready(rctx)
			cancel()
			if last == nil {
				return nil
			}
		}
	}
}

// getJSON reads path over the member's client port, which serves HTTP next
// to gRPC.
func (m *EtcdMember) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.Endpoint()+path, nil)
	if err != nil {
		return err
	}
	req.Close = true // no idle connection left to a member a test kills
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (m *EtcdMember) logPath() string { return filepath.Join(m.dir, "etcd.log") }

func (m *EtcdMember) logSince(offset int64) string {
	b, err := os.ReadFile(m.logPath())
	if err != nil {
		return fmt.Sprintf("(cannot read the member's log: %v)", err)
	}
	if offset > int64(len(b)) {
		offset = 0
	}
	return string(b[offset:])
}
