// The container backend, chosen by setting PGSHADOW_TEST_IMAGE (e.g.
// postgres:17) to test against PostgreSQL versions not installed locally.
// It runs the image with dockertest, publishes the server on a fixed
// 127.0.0.1 port (so Restart keeps it) and copies the extension files from
// the repository root into the server's share/extension directory.

package pgserver

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"
	"github.com/ory/dockertest/v3"
	dc "github.com/ory/dockertest/v3/docker"
)

type container struct {
	s        *Server
	pool     *dockertest.Pool
	res      *dockertest.Resource
	settings map[string]string
	removed  bool
}

func startContainer(ctx context.Context, s *Server, o Options, image string) (err error) {
	pool, err := dockertest.NewPool("")
	if err != nil {
		return fmt.Errorf("connect to docker: %w", err)
	}
	pool.MaxWait = 2 * time.Minute
	repo, tag := image, "latest"
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		repo, tag = image[:i], image[i+1:]
	}
	if s.Port, err = freePort(); err != nil {
		return err
	}
	res, err := pool.RunWithOptions(&dockertest.RunOptions{
		Name:       fmt.Sprintf("pgshadow-test-%s-%d-%d", safeName(s.Name), os.Getpid(), s.Port),
		Repository: repo,
		Tag:        tag,
		Env: []string{
			"POSTGRES_USER=" + s.User,
			"POSTGRES_PASSWORD=" + s.Password,
			"POSTGRES_DB=postgres",
			"POSTGRES_HOST_AUTH_METHOD=scram-sha-256",
			"POSTGRES_INITDB_ARGS=-E UTF8 --locale=C --auth-local=trust --auth-host=scram-sha-256",
		},
		Labels:       map[string]string{"pgshadow-test": s.Name},
		ExposedPorts: []string{"5432/tcp"},
		PortBindings: map[dc.Port][]dc.PortBinding{
			"5432/tcp": {{HostIP: "127.0.0.1", HostPort: strconv.Itoa(s.Port)}},
		},
	}, func(hc *dc.HostConfig) {
		hc.AutoRemove = false
		hc.RestartPolicy = dc.RestartPolicy{Name: "no"}
	})
	if err != nil {
		return fmt.Errorf("run %s: %w", image, err)
	}
	c := &container{s: s, pool: pool, res: res, settings: defaultSettings()}
	mergeSettings(c.settings, o.Settings)
	s.backend = c
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n--- container log ---\n%s", err, c.logTail(30))
			_ = c.stop()
		}
	}()
	if err := c.waitReady(ctx); err != nil {
		return err
	}
	if err := c.copyExtension(); err != nil {
		return err
	}
	// Settings go through ALTER SYSTEM rather than "postgres -c" so that
	// Reload can change any of them later.
	return c.applySettings(nil)
}

func (c *container) waitReady(ctx context.Context) error {
	return c.pool.Retry(func() error {
		conn, err := pgx.Connect(ctx, c.s.ConnString("postgres"))
		if err != nil {
			if ctx.Err() != nil {
				return backoff.Permanent(ctx.Err())
			}
			return err
		}
		return conn.Close(ctx)
	})
}

// copyExtension uploads pgshadow.control and pgshadow--*.sql into the
// container's `pg_config --sharedir`/extension, wherever the image keeps it.
func (c *container) copyExtension() error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	files, _ := filepath.Glob(filepath.Join(root, "pgshadow--*.sql"))
	files = append([]string{filepath.Join(root, "pgshadow.control")}, files...)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("read extension file: %w", err)
		}
		hdr := &tar.Header{Name: filepath.Base(f), Mode: 0o644, Size: int64(len(data)), ModTime: time.Now()}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	var out, stderr bytes.Buffer
	code, err := c.res.Exec([]string{"pg_config", "--sharedir"}, dockertest.ExecOptions{StdOut: &out, StdErr: &stderr})
	if err != nil || code != 0 {
		return fmt.Errorf("pg_config --sharedir in container (exit %d): %v %s", code, err, stderr.String())
	}
	dir := strings.TrimSpace(out.String()) + "/extension"
	if err := c.pool.Client.UploadToContainer(c.res.Container.ID, dc.UploadToContainerOptions{
		InputStream: &buf, Path: dir,
	}); err != nil {
		return fmt.Errorf("copy extension files to %s: %w", dir, err)
	}
	return nil
}

func (c *container) stop() error {
	if c.removed {
		return nil
	}
	c.removed = true
	return c.pool.Purge(c.res)
}

func (c *container) kill() error {
	if c.removed {
		return errStopped
	}
	err := c.pool.Client.KillContainer(dc.KillContainerOptions{ID: c.res.Container.ID, Signal: dc.SIGKILL})
	var notRunning *dc.ContainerNotRunning
	if errors.As(err, &notRunning) {
		return nil
	}
	return err
}

func (c *container) promote(context.Context) error {
	return errors.New("standbys are not supported with containers")
}

func (c *container) restart(ctx context.Context) error {
	if c.removed {
		return errStopped
	}
	id := c.res.Container.ID
	if err := c.pool.Client.StopContainer(id, 30); err != nil {
		var notRunning *dc.ContainerNotRunning
		if !errors.As(err, &notRunning) {
			return err
		}
	}
	if err := c.pool.Client.StartContainer(id, nil); err != nil {
		return err
	}
	return c.waitReady(ctx)
}

func (c *container) pause(stop bool) error {
	if c.removed {
		return errStopped
	}
	if stop {
		return c.pool.Client.PauseContainer(c.res.Container.ID)
	}
	return c.pool.Client.UnpauseContainer(c.res.Container.ID)
}

func (c *container) applySettings(settings map[string]string) error {
	if c.removed {
		return errStopped
	}
	ctx := context.Background()
	old := map[string]string{}
	mergeSettings(old, c.settings)
	mergeSettings(c.settings, settings)
	conn, err := pgx.Connect(ctx, c.s.ConnString("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for k := range old {
		if _, ok := c.settings[k]; !ok {
			if _, err := conn.Exec(ctx, "ALTER SYSTEM RESET "+k); err != nil {
				return fmt.Errorf("reset %s: %w", k, err)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.settings)) {
		// Names were checked by checkSettings; the value goes through format %L.
		var stmt string
		if err := conn.QueryRow(ctx, "SELECT format('ALTER SYSTEM SET %s = %L', $1::text, $2::text)", k, c.settings[k]).Scan(&stmt); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	conn.Close(ctx)
	return c.restart(ctx)
}

func (c *container) logTail(n int) string {
	var out bytes.Buffer
	err := c.pool.Client.Logs(dc.LogsOptions{
		Container: c.res.Container.ID, OutputStream: &out, ErrorStream: &out,
		Stdout: true, Stderr: true, Tail: strconv.Itoa(n),
	})
	if err != nil {
		return fmt.Sprintf("(no container log: %v)", err)
	}
	return tailLines(out.String(), n)
}

// repoRoot walks up from the working directory to the directory with go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (go.mod) not found above the working directory")
		}
		dir = parent
	}
}
