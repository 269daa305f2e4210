// Package storage provides the stores a control plane keeps its objects in. The
// apiserver always talks etcd v3 to it; what is behind that is chosen per
// cluster with a Backend: kine in-process on an embedded SQLite file (the
// default), kine on a PostgreSQL or MySQL/MariaDB database, or etcd itself.
// Every backend lists keys in etcd's byte order, pages included.
package storage

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"github.com/k3s-io/kine/pkg/drivers/generic"
	"github.com/k3s-io/kine/pkg/endpoint"
	"github.com/sirupsen/logrus"

	"github.com/vmatrix/vmatrix/internal/proc"
)

// Store is a running storage backend.
type Store interface {
	// Endpoint is the etcd v3 URL the apiserver connects to (several are
	// comma-separated, as --etcd-servers takes them).
	Endpoint() string
	// Prefix is the key prefix the apiserver keeps its objects under
	// (--etcd-prefix); "" means the apiserver's default. An etcd shared by
	// several clusters needs one per cluster.
	Prefix() string
	// Stop shuts the store down and waits until it has released its files.
	Stop() error
}

// ProcessStore is a store that runs as a child process of vmatrix (an etcd
// of the cluster's own). Process is nil when it does not (an external
// server).
type ProcessStore interface {
	Store
	Process() *proc.Process
	Restarted(*proc.Process)
}

func init() {
	// kine logs through the process-wide logrus logger; at Info it narrates every
	// start and compaction of every cluster this process runs.
	logrus.SetLevel(logrus.WarnLevel)
	logrus.SetOutput(io.Discard)
}

// kineStore is kine serving etcd v3 on a unix socket, in this process.
type kineStore struct {
	endpoint string
	cancel   context.CancelFunc
	wg       *sync.WaitGroup
	once     sync.Once
}

// StartSQLite starts kine on an SQLite database in dir, serving on a unix socket
// in socketDir (a short path: socket paths are limited to 107 bytes).
func StartSQLite(dir, socketDir string) (Store, error) {
	dsn := "sqlite://" + sqliteFile(dir) + "?" + url.Values{
		"_journal":      {"WAL"},
		"cache":         {"shared"},
		"_busy_timeout": {"30000"},
		// kine's own defaults, which any DSN of ours replaces: no fsync at
		// every commit (a crash of the process loses nothing; one of the
		// machine can lose the last writes of a cluster that a test made
		// anyway), and a write transaction takes the lock as it starts.
		"_synchronous":     {"NORMAL"},
		"_txlock":          {"immediate"},
		"_stmt_cache_size": {"20"},
	}.Encode()
	return startKine(dsn, filepath.Join(socketDir, "kine.sock"))
}

func startKine(dsn, socket string) (Store, error) {
	if len(socket) > 100 {
		return nil, fmt.Errorf("kine socket path %q is too long for a unix socket", socket)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wg := &sync.WaitGroup{}
	cfg, err := endpoint.Listen(ctx, endpoint.Config{
		Listener:  "unix://" + socket,
		Endpoint:  dsn,
		WaitGroup: wg,
		// kine's command-line defaults; the library takes zero as "unset" for none of them.
		ConnectionPoolConfig: generic.ConnectionPoolConfig{MaxIdle: 20, MaxLifetime: 0, MaxIdleTime: 2 * time.Minute},
		NotifyInterval:       5 * time.Second,
		EmulatedETCDVersion:  "3.6.11",
		CompactInterval:      5 * time.Minute,
		CompactTimeout:       5 * time.Second,
		CompactMinRetain:     1000,
		CompactBatchSize:     1000,
		PollBatchSize:        500,
		PollInterval:         time.Second,
	})
	if err != nil {
		cancel()
		wg.Wait()
		return nil, fmt.Errorf("starting kine: %w", err)
	}
	return &kineStore{endpoint: cfg.Endpoints[0], cancel: cancel, wg: wg}, nil
}

func (k *kineStore) Endpoint() string { return k.endpoint }

// Prefix is the apiserver's default: a kine database holds one cluster.
func (k *kineStore) Prefix() string { return "" }

func (k *kineStore) Stop() error {
	k.once.Do(func() {
		k.cancel()
		k.wg.Wait()
	})
	return nil
}
