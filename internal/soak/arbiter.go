package soak

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tandemdb/tandem/internal/dbserver"
)

// Arbiters are the arbiters a soak's runs can be configured with.
var Arbiters = []string{"witness", "etcd", "none"}

// DefaultArbiter is the arbiter a config of engine gets when it names
// none: a witness beside the config for SQLite files, none for servers.
func DefaultArbiter(engine string) string {
	if engine == "sqlite" {
		return "witness"
	}
	return "none"
}

// etcdArbiter is the 3-member etcd cluster of a soak configured with the
// etcd arbiter: started once, on loopback ports, and shared by the runs,
// each run keeping its view under a key of its own.
type etcdArbiter struct {
	cluster *dbserver.EtcdCluster
	members []*etcdMember
}

// etcdMember is a member and the faults on it.
type etcdMember struct {
	name     string
	m        *dbserver.EtcdMember
	mu       sync.Mutex
	isolated bool
}

func startEtcd(dir string) (*etcdArbiter, error) {
	c, err := dbserver.RunEtcd(dir, 3)
	if err != nil {
		return nil, err
	}
	e := &etcdArbiter{cluster: c}
	for i := range c.Members() {
		m := c.Member(i)
		e.members = append(e.members, &etcdMember{name: m.Name(), m: m})
	}
	return e, nil
}

func (e *etcdArbiter) close() error { return e.cluster.Close() }

func (e *etcdArbiter) names() []string {
	out := make([]string, len(e.members))
	for i, m := range e.members {
		out[i] = m.name
	}
	return out
}

func (e *etcdArbiter) member(name string) *etcdMember {
	for _, m := range e.members {
		if m.name == name {
			return m
		}
	}
	panic("soak: no etcd member " + name)
}

// heal restarts every member that is down, rejoins every isolated one and
// waits until each answers its health check, so that the next run starts
// on a whole cluster.
func (e *etcdArbiter) heal() error {
	var errs []error
	for _, m := range e.members {
		m.mu.Lock()
		if !m.m.Running() {
			errs = append(errs, m.m.Relaunch())
		}
		if m.isolated {
			m.isolated = false
			m.m.Rejoin()
		}
		m.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs = append(errs, e.cluster.WaitHealthy(ctx))
	return errors.Join(errs...)
}

// arbiterConfig renders the config's arbiter entry for a run: key is the
// etcd key the run's view is kept under.
func (o *Options) arbiterConfig(key string) string {
	if o.Arbiter != "etcd" {
		return "arbiter: " + o.Arbiter + "\n"
	}
	return fmt.Sprintf("arbiter:\n  kind: etcd\n  endpoints: [%s]\n  key: %s\n",
		strings.Join(o.etcd.cluster.Endpoints(), ", "), key)
}
