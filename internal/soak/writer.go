package soak

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/internal/crash"
	"github.com/tandemdb/tandem/internal/jepsen"
)

// The bank every run sets up: accounts 1..accounts, each with balance.
const (
	accounts = 8
	balance  = 100
)

// WriterMain is the body of a writer process, `soak writer -config F -log
// DIR -name NAME ...`: it opens the cluster as an application process
// does, migrates the two models and runs the unique and bank workloads
// until SIGTERM, logging every acknowledgement (on disk before it counts),
// every operation's time and outcome, and every wrong read to DIR/NAME.log.
// On SIGTERM it stops the workloads, closes the cluster and exits 0. It
// also exits when the soak that started it is gone. It returns the exit
// code.
func WriterMain(args []string) int {
	fs := flag.NewFlagSet("soak writer", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the cluster's config file")
	logDir := fs.String("log", "", "the directory of the writers' logs")
	name := fs.String("name", "", "this process's name (its log file, the prefix of its values)")
	goroutines := fs.Int("goroutines", 2, "inserting goroutines, and as many transferring ones")
	nAccounts := fs.Int("accounts", accounts, "the bank's accounts")
	bal := fs.Int64("balance", balance, "each account's starting balance")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cfgPath == "" || *logDir == "" || *name == "" {
		fmt.Fprintln(os.Stderr, "soak writer: -config, -log and -name are required")
		return 2
	}
	if err := runWriter(*cfgPath, *logDir, *name, *goroutines, *nAccounts, *bal); err != nil {
		fmt.Fprintf(os.Stderr, "soak writer %s: %v\n", *name, err)
		return 1
	}
	return 0
}

func runWriter(cfgPath, logDir, name string, goroutines, nAccounts int, bal int64) error {
	// The crash-commit fault: SIGUSR1 (primary first) or SIGUSR2 (the
	// secondaries first) arms package crash, which makes this process's
	// next write commit in that order and kill the process between the
	// two sides.
	armed := make(chan os.Signal, 1)
	signal.Notify(armed, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for sig := range armed {
			order := crash.PrimaryFirst
			if sig == syscall.SIGUSR2 {
				order = crash.SecondariesFirst
			}
			crash.Arm(order, func() {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // nothing else may commit while the signal lands
			})
		}
	}()
	parent := os.Getppid()
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	// The soak re-parents nothing: when it dies, its writers stop.
	orphaned := make(chan struct{})
	go func() {
		for os.Getppid() == parent {
			time.Sleep(200 * time.Millisecond)
		}
		close(orphaned)
	}()

	lg, err := openWriterLog(filepath.Join(logDir, name+".log"))
	if err != nil {
		return err
	}
	defer lg.Close()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg, err := tandem.LoadConfig(cfgPath)
	if err != nil {
		return err
	}
	ctx := context.Background()
	c, err := tandem.Open(ctx, cfg, tandem.WithLogger(logger))
	if err != nil {
		return err
	}
	defer c.Close()
	// Migrate as every process of an application does at its start; it
	// may fail while a fault lasts: try again.
	for {
		err := c.Migrate(ctx, &jepsen.UniqueItem{}, &jepsen.Account{})
		if err == nil {
			break
		}
		logger.Warn("soak: migrate failed; trying again", "err", err)
		select {
		case <-term:
			return nil
		case <-orphaned:
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
	fmt.Println("ready")

	uniq := jepsen.Unique{Workers: goroutines, Tag: name, Backoff: 20 * time.Millisecond, Acked: lg.Ack, Observe: lg.Op}
	bank := jepsen.Bank{Accounts: nAccounts, Balance: bal, Transferers: goroutines, Readers: 1,
		ReadInTx: true, ReadPause: 50 * time.Millisecond, Backoff: 20 * time.Millisecond, Observe: lg.Op}
	ur, br := uniq.Start(ctx, c), bank.Start(ctx, c)
	select {
	case <-term:
	case <-orphaned:
	}
	uh, bh := ur.Stop(), br.Stop()
	logger.Info("soak: stopped", "acked", len(uh.Acked), "failed", len(uh.Failed),
		"transfers", bh.Transfers, "transfers_failed", len(bh.Failed), "reads", bh.Reads, "bad_reads", len(bh.BadReads))
	if err := c.Close(); err != nil {
		logger.Warn("soak: close", "err", err)
	}
	return lg.Close()
}
