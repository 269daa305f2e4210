package storage_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/vmatrix/vmatrix/internal/proc"
)

// The servers the backend tests run against: each test starts its own from the
// binaries of Debian's postgresql, mariadb-server and etcd-server packages, in a
// temporary directory on a free port, and removes it afterwards. An env DSN
// points a test at an existing server instead.
const (
	postgresEnv = "VMATRIX_TEST_POSTGRES_DSN" // postgres://user:password@host:port/ (a user that may create databases)
	mysqlEnv    = "VMATRIX_TEST_MYSQL_DSN"    // user:password@tcp(host:port)/
	etcdEnv     = "VMATRIX_TEST_ETCD_ENDPOINT"
)

const testPassword = "s3cret-Pa55word"

// server is a throwaway database server of one test.
type server struct {
	// DSN connects as a user that may create databases, naming no database.
	DSN string
	// Limited connects as a user that may use the database "given" only, and
	// names no database. Empty for a server from an env DSN.
	Limited string
	// Crash kills the server and starts it again (nil for a server from an
	// env DSN).
	Crash func()
}

// lookBinary finds a server's binaries; when one is missing it returns why, in
// one line, for the test to skip with.
func lookBinary(pkg string, names ...string) ([]string, string) {
	var paths []string
	for _, name := range names {
		p, err := exec.LookPath(name)
		if err != nil {
			// PostgreSQL keeps its server binaries off PATH, per major version;
			// mariadbd is in /usr/sbin, off a user's PATH.
			dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
			sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
			dirs = append(dirs, "/usr/sbin")
			for _, d := range dirs {
				if _, err := os.Stat(filepath.Join(d, name)); err == nil {
					p = filepath.Join(d, name)
					break
				}
			}
		}
		if p == "" {
			return nil, fmt.Sprintf("%s not found: install Debian's %s (make deps) to run this test", name, pkg)
		}
		paths = append(paths, p)
	}
	return paths, ""
}

// serverDir is a temporary directory that an unprivileged server user can
// enter (t.TempDir's parents are private to root).
func serverDir(t *testing.T, owner *user.User) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vmatrix-db-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if owner != nil {
		uid, _ := strconv.Atoi(owner.Uid)
		gid, _ := strconv.Atoi(owner.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func command(as *user.User, path string, args ...string) *exec.Cmd {
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if as != nil {
		uid, _ := strconv.Atoi(as.Uid)
		gid, _ := strconv.Atoi(as.Gid)
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	return cmd
}

// serve runs a server process until the test ends, then stops it (SIGTERM,
// then SIGKILL of its group) and waits for it. The returned crash kills it
// with SIGKILL and starts it again with the same command, as a server
// that dies and is restarted by its supervisor.
func serve(t *testing.T, cmd *exec.Cmd, logPath string) (crash func()) {
	t.Helper()
	start := func(cmd *exec.Cmd) *proc.Process {
		log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = log, log
		p, err := proc.StartCmd(filepath.Base(cmd.Path), cmd)
		log.Close() // the server has its own copy
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := start(cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("end of %s:\n%s", logPath, proc.TailFile(logPath, 20))
		}
		if err := p.Stop(10 * time.Second); err != nil {
			t.Error(err)
		}
	})
	return func() {
		p.Stop(0)
		// A server's own children may outlive it for a moment (PostgreSQL's
		// backends leave its process group and notice its death by
		// themselves), holding what a new server needs: try again until one
		// stays up.
		for try := 0; try < 20; try++ {
			again := exec.Command(cmd.Path, cmd.Args[1:]...)
			again.SysProcAttr = &syscall.SysProcAttr{Credential: cmd.SysProcAttr.Credential}
			p = start(again)
			select {
			case <-p.Done():
				time.Sleep(500 * time.Millisecond)
			case <-time.After(time.Second):
				return
			}
		}
		t.Fatalf("the server did not start again; end of %s:\n%s", logPath, proc.TailFile(logPath, 10))
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func run(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd.Path, err, out)
	}
}

// waitSQL polls until db answers, for at most 30 s.
func waitSQL(t *testing.T, db *sql.DB, logPath string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("server did not answer in 30s: %v\n%s", err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func execSQL(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// startPostgres starts a PostgreSQL with password authentication. PostgreSQL
// refuses to run as root, so as root it runs as the postgres user.
func startPostgres(t *testing.T) (server, string) {
	t.Helper()
	if dsn := os.Getenv(postgresEnv); dsn != "" {
		return server{DSN: dsn}, ""
	}
	bins, skip := lookBinary("postgresql", "initdb", "postgres")
	if skip != "" {
		return server{}, skip
	}
	var as *user.User
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return server{}, "running as root and there is no postgres user to run PostgreSQL as"
		}
		as = u
	}
	dir := serverDir(t, as)
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(testPassword+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, command(as, bins[0], "-D", filepath.Join(dir, "data"), "-U", "postgres", "--pwfile="+pw,
		"--auth=scram-sha-256", "-E", "UTF8", "--no-sync"))
	port := freePort(t)
	logPath := filepath.Join(dir, "postgres.log")
	crash := serve(t, command(as, bins[1], "-D", filepath.Join(dir, "data"), "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=300"), logPath)

	dsn := fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/?sslmode=disable", testPassword, port)
	cfg, err := pgx.ParseConfig(strings.Replace(dsn, "/?", "/postgres?", 1))
	if err != nil {
		t.Fatal(err)
	}
	db := openPgx(cfg)
	defer db.Close()
	waitSQL(t, db, logPath)
	execSQL(t, db,
		`CREATE ROLE limited LOGIN PASSWORD '`+testPassword+`'`,
		`CREATE DATABASE given OWNER limited`)
	return server{DSN: dsn, Limited: fmt.Sprintf("postgres://limited:%s@127.0.0.1:%d/?sslmode=disable", testPassword, port), Crash: crash}, ""
}

// startMariaDB starts a MariaDB server as the current user.
func startMariaDB(t *testing.T) (server, string) {
	t.Helper()
	if dsn := os.Getenv(mysqlEnv); dsn != "" {
		return server{DSN: dsn}, ""
	}
	bins, skip := lookBinary("mariadb-server", "mariadb-install-db", "mariadbd")
	if skip != "" {
		return server{}, skip
	}
	dir := serverDir(t, nil)
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	run(t, command(nil, bins[0], "--no-defaults", "--datadir="+data, "--user="+me.Username,
		"--auth-root-authentication-method=normal", "--skip-test-db"))
	port := freePort(t)
	sock := filepath.Join(dir, "mysqld.sock")
	logPath := filepath.Join(dir, "mariadb.log")
	crash := serve(t, command(nil, bins[1], "--no-defaults", "--datadir="+data, "--user="+me.Username,
		"--port="+strconv.Itoa(port), "--bind-address=127.0.0.1", "--socket="+sock,
		"--pid-file="+filepath.Join(dir, "mariadb.pid"), "--skip-log-bin", "--skip-name-resolve",
		"--innodb-flush-log-at-trx-commit=0", "--innodb-buffer-pool-size=64M", "--max-connections=300"), logPath)

	// root has no password yet and may log in on the socket only.
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "unix", sock
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	waitSQL(t, db, logPath)
	execSQL(t, db,
		`CREATE USER 'vmatrix'@'127.0.0.1' IDENTIFIED BY '`+testPassword+`'`,
		`GRANT ALL ON *.* TO 'vmatrix'@'127.0.0.1'`,
		`CREATE USER 'limited'@'127.0.0.1' IDENTIFIED BY '`+testPassword+`'`,
		"CREATE DATABASE given",
		"GRANT ALL ON given.* TO 'limited'@'127.0.0.1'")
	return server{
		DSN:     fmt.Sprintf("vmatrix:%s@tcp(127.0.0.1:%d)/", testPassword, port),
		Limited: fmt.Sprintf("limited:%s@tcp(127.0.0.1:%d)/", testPassword, port),
		Crash:   crash,
	}, ""
}

// startEtcdServer starts an etcd as the external endpoint of a test.
func startEtcdServer(t *testing.T) (server, string) {
	t.Helper()
	if ep := os.Getenv(etcdEnv); ep != "" {
		return server{DSN: ep}, ""
	}
	bins, skip := lookBinary("etcd-server", "etcd")
	if skip != "" {
		return server{}, skip
	}
	dir := serverDir(t, nil)
	ports := []int{freePort(t), freePort(t)}
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	serve(t, command(nil, bins[0], "--name=t", "--data-dir="+filepath.Join(dir, "data"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer, "--initial-cluster=t="+peer),
		filepath.Join(dir, "etcd.log"))
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(client, "http://"), time.Second)
		if err == nil {
			c.Close()
			return server{DSN: client}, ""
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "etcd.log"))
			t.Fatalf("etcd did not listen in 30s\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
