// Package remote is the command:remote:Command TEST DOUBLE. Inputs, outputs, defaults and
// field flags mirror the real provider's schema (pulumi-command v1.2.1,
// provider/pkg/provider/remote and common/inputs.go); the behaviour is described per method.
package remote

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Command is the resource. Its token is command:remote:Command (package remote, type Command).
type Command struct{}

func (c *Command) Annotate(a infer.Annotator) {
	a.Describe(&c, "TEST DOUBLE of command:remote:Command: runs create/update/delete over SSH.")
}

// Logging is the real provider's enum (command:remote:Logging).
type Logging string

const (
	LogStdout          Logging = "stdout"
	LogStderr          Logging = "stderr"
	LogStdoutAndStderr Logging = "stdoutAndStderr"
	NoLogging          Logging = "none"
)

func (Logging) Values() []infer.EnumValue[Logging] {
	return []infer.EnumValue[Logging]{
		{Name: string(LogStdout), Value: LogStdout, Description: "Capture stdout in logs but not stderr"},
		{Name: string(LogStderr), Value: LogStderr, Description: "Capture stderr in logs but not stdout"},
		{Name: string(LogStdoutAndStderr), Value: LogStdoutAndStderr, Description: "Capture stdout and stderr in logs"},
		{Name: string(NoLogging), Value: NoLogging, Description: "Capture no logs"},
	}
}

func (l *Logging) logsStdout() bool { return l == nil || *l == LogStdout || *l == LogStdoutAndStderr }
func (l *Logging) logsStderr() bool { return l == nil || *l == LogStderr || *l == LogStdoutAndStderr }

// ProxyConnection is accepted for schema parity; the double refuses to use it.
type ProxyConnection struct {
	User               *string  `pulumi:"user,optional"`
	Password           *string  `pulumi:"password,optional" provider:"secret"`
	Host               *string  `pulumi:"host"`
	Port               *float64 `pulumi:"port,optional"`
	PrivateKey         *string  `pulumi:"privateKey,optional" provider:"secret"`
	PrivateKeyPassword *string  `pulumi:"privateKeyPassword,optional" provider:"secret"`
	AgentSocketPath    *string  `pulumi:"agentSocketPath,optional"`
	DialErrorLimit     *int     `pulumi:"dialErrorLimit,optional"`
	PerDialTimeout     *int     `pulumi:"perDialTimeout,optional"`
	HostKey            *string  `pulumi:"hostKey,optional"`
}

// Connection: same fields and defaults as the real one (user root, port 22, 10 dial errors,
// 15 s per dial); the whole object is secret, as in the real schema.
type Connection struct {
	User               *string          `pulumi:"user,optional"`
	Password           *string          `pulumi:"password,optional" provider:"secret"`
	Host               *string          `pulumi:"host"`
	Port               *float64         `pulumi:"port,optional"`
	PrivateKey         *string          `pulumi:"privateKey,optional" provider:"secret"`
	PrivateKeyPassword *string          `pulumi:"privateKeyPassword,optional" provider:"secret"`
	AgentSocketPath    *string          `pulumi:"agentSocketPath,optional"`
	DialErrorLimit     *int             `pulumi:"dialErrorLimit,optional"`
	PerDialTimeout     *int             `pulumi:"perDialTimeout,optional"`
	HostKey            *string          `pulumi:"hostKey,optional"`
	Proxy              *ProxyConnection `pulumi:"proxy,optional"`
}

func (c *Connection) Annotate(a infer.Annotator) {
	a.SetDefault(&c.User, "root")
	a.SetDefault(&c.Port, 22)
	a.SetDefault(&c.DialErrorLimit, 10)
	a.SetDefault(&c.PerDialTimeout, 15)
}

// CommandInputs: triggers replace the resource (provider:"replaceOnChanges", as in the real
// common.ResourceInputs); every other input change is an update.
type CommandInputs struct {
	Triggers               *[]any            `pulumi:"triggers,optional" provider:"replaceOnChanges"`
	Create                 *string           `pulumi:"create,optional"`
	Update                 *string           `pulumi:"update,optional"`
	Delete                 *string           `pulumi:"delete,optional"`
	Stdin                  *string           `pulumi:"stdin,optional"`
	Logging                *Logging          `pulumi:"logging,optional"`
	Connection             *Connection       `pulumi:"connection" provider:"secret"`
	Environment            map[string]string `pulumi:"environment,optional"`
	AddPreviousOutputInEnv *bool             `pulumi:"addPreviousOutputInEnv,optional"`
}

// CommandOutputs: the inputs plus what the last successful run printed.
type CommandOutputs struct {
	CommandInputs
	Stdout string `pulumi:"stdout"`
	Stderr string `pulumi:"stderr"`
}

var _ = (infer.CustomResource[CommandInputs, CommandOutputs])((*Command)(nil))
var _ = (infer.CustomUpdate[CommandInputs, CommandOutputs])((*Command)(nil))
var _ = (infer.CustomDelete[CommandOutputs])((*Command)(nil))

// Create runs `create` (nothing in preview, nothing when unset). The ID is the resource name
// plus random hex. On failure the error is returned WITH the state, so the engine records a
// partially created resource (the framework's behaviour for the real provider too).
func (*Command) Create(ctx context.Context, req infer.CreateRequest[CommandInputs]) (infer.CreateResponse[CommandOutputs], error) {
	state := CommandOutputs{CommandInputs: req.Inputs}
	id := req.Name + "-" + randomHex(4)
	if req.DryRun || req.Inputs.Create == nil {
		return infer.CreateResponse[CommandOutputs]{ID: id, Output: state}, nil
	}
	err := state.run(ctx, *req.Inputs.Create)
	return infer.CreateResponse[CommandOutputs]{ID: id, Output: state}, err
}

// Update runs `update` when set, else `create`; the previous stdout/stderr stay until a run
// succeeds.
func (*Command) Update(ctx context.Context, req infer.UpdateRequest[CommandInputs, CommandOutputs]) (infer.UpdateResponse[CommandOutputs], error) {
	state := CommandOutputs{CommandInputs: req.Inputs, Stdout: req.State.Stdout, Stderr: req.State.Stderr}
	if req.DryRun {
		return infer.UpdateResponse[CommandOutputs]{Output: state}, nil
	}
	var err error
	if req.Inputs.Update != nil {
		err = state.run(ctx, *req.Inputs.Update)
	} else if req.Inputs.Create != nil {
		err = state.run(ctx, *req.Inputs.Create)
	}
	return infer.UpdateResponse[CommandOutputs]{Output: state}, err
}

// Delete runs `delete` when set (on destroy and on the old half of a replacement).
func (*Command) Delete(ctx context.Context, req infer.DeleteRequest[CommandOutputs]) (infer.DeleteResponse, error) {
	if req.State.Delete == nil {
		return infer.DeleteResponse{}, nil
	}
	state := req.State
	return infer.DeleteResponse{}, state.run(ctx, *req.State.Delete)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// run opens one SSH connection and one session, sets the environment (and the previous
// outputs as PULUMI_COMMAND_STDOUT/STDERR unless addPreviousOutputInEnv is false), feeds
// stdin, logs the chosen streams line by line as info status messages, and on success stores
// stdout/stderr without one trailing newline. A failure's error repeats the command text and
// the combined output, as the real provider's does.
func (c *CommandOutputs) run(ctx context.Context, cmd string) error {
	client, err := c.Connection.dial(ctx)
	if err != nil {
		return err
	}
	defer client.Close()
	session, err := client.NewSession()
	if err != nil {
		return err
	}
	defer session.Close()

	for k, v := range c.Environment {
		if err := session.Setenv(k, v); err != nil {
			p.GetLogger(ctx).Errorf("Unable to set '%s'. This only works if your SSH server is configured to accept these variables via AcceptEnv.", k)
			return fmt.Errorf("could not set environment variable %q: %w", k, err)
		}
	}
	if c.AddPreviousOutputInEnv == nil || *c.AddPreviousOutputInEnv {
		if c.Stdout != "" {
			if err := session.Setenv("PULUMI_COMMAND_STDOUT", c.Stdout); err != nil {
				p.GetLogger(ctx).Warning("Unable to set 'PULUMI_COMMAND_STDOUT' (AcceptEnv)")
			}
		}
		if c.Stderr != "" {
			if err := session.Setenv("PULUMI_COMMAND_STDERR", c.Stderr); err != nil {
				p.GetLogger(ctx).Warning("Unable to set 'PULUMI_COMMAND_STDERR' (AcceptEnv)")
			}
		}
	}
	if c.Stdin != nil && len(*c.Stdin) > 0 {
		session.Stdin = strings.NewReader(*c.Stdin)
	}

	var stdout, stderr, combined bytes.Buffer
	r, w := io.Pipe()
	outs := []io.Writer{&stdout, &combined}
	if c.Logging.logsStdout() {
		outs = append(outs, w)
	}
	errs := []io.Writer{&stderr, &combined}
	if c.Logging.logsStderr() {
		errs = append(errs, w)
	}
	session.Stdout = io.MultiWriter(outs...)
	session.Stderr = io.MultiWriter(errs...)
	done := make(chan struct{})
	go logLines(ctx, r, done)
	err = session.Run(cmd)
	_ = w.Close()
	<-done
	if err != nil {
		return fmt.Errorf("%w: running %q:\n%s", err, cmd, combined.String())
	}
	c.Stdout = strings.TrimSuffix(stdout.String(), "\n")
	c.Stderr = strings.TrimSuffix(stderr.String(), "\n")
	return nil
}

// logLines sends each line of the logged streams (both feed the one pipe r) to the engine as
// an info status message, with a bufio.Scanner at its defaults, as the real provider does
// (util.LogOutput). A line that does not fit the Scanner's 64 KiB buffer ends the loop, and
// nothing reads r after that: the next write of a logged stream blocks, the SSH session's
// output is no longer drained and session.Run never returns, so the step hangs — the real
// provider's behaviour, kept on purpose so the e2e suite meets it.
func logLines(ctx context.Context, r io.Reader, done chan<- struct{}) {
	defer close(done)
	scanner := bufio.NewScanner(r)
	for scanner.Scan() {
		p.GetLogger(ctx).InfoStatus(scanner.Text())
	}
}

func (c *Connection) sshConfig() (*ssh.ClientConfig, error) {
	hostKeyCallback := ssh.InsecureIgnoreHostKey() //nolint:gosec // as the real provider when hostKey is unset
	var algorithms []string
	if c.HostKey != nil {
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(*c.HostKey))
		if err != nil {
			return nil, fmt.Errorf("failed to parse host key: %w", err)
		}
		hostKeyCallback = ssh.FixedHostKey(key)
		algorithms = []string{key.Type()}
	}
	config := &ssh.ClientConfig{
		User:              deref(c.User, "root"),
		HostKeyCallback:   hostKeyCallback,
		HostKeyAlgorithms: algorithms,
		Timeout:           time.Duration(derefInt(c.PerDialTimeout, 15)) * time.Second,
	}
	if c.PrivateKey != nil {
		var signer ssh.Signer
		var err error
		if c.PrivateKeyPassword != nil {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(*c.PrivateKey), []byte(*c.PrivateKeyPassword))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(*c.PrivateKey))
		}
		if err != nil {
			return nil, err
		}
		config.Auth = append(config.Auth, ssh.PublicKeys(signer))
	}
	if c.Password != nil {
		password := *c.Password
		config.Auth = append(config.Auth, ssh.Password(password), ssh.KeyboardInteractive(
			func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = password
				}
				return answers, nil
			}))
	}
	socket := ""
	if c.AgentSocketPath != nil {
		socket = *c.AgentSocketPath
	} else {
		socket = os.Getenv("SSH_AUTH_SOCK")
	}
	if socket != "" {
		conn, err := net.Dial("unix", socket)
		if err != nil {
			return nil, err
		}
		config.Auth = append(config.Auth, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
	}
	return config, nil
}

// dial retries like the real provider: up to dialErrorLimit failed attempts (-1: unlimited),
// reporting "Dial n/limit failed: retrying" as status, then "after n failed attempts: <err>".
func (c *Connection) dial(ctx context.Context) (*ssh.Client, error) {
	if c.Proxy != nil {
		return nil, errors.New("connection.proxy: not supported by the shortcircuit command test double")
	}
	config, err := c.sshConfig()
	if err != nil {
		return nil, err
	}
	endpoint := net.JoinHostPort(deref(c.Host, ""), fmt.Sprintf("%d", int(derefFloat(c.Port, 22))))
	limit := derefInt(c.DialErrorLimit, 10)
	for try := 0; ; try++ {
		client, err := ssh.Dial("tcp", endpoint, config)
		if err == nil {
			return client, nil
		}
		dials := try + 1
		if limit > -1 && dials > limit {
			return nil, fmt.Errorf("after %d failed attempts: %w", try, err)
		}
		limitText := "inf"
		if limit != -1 {
			limitText = fmt.Sprintf("%d", limit)
		}
		p.GetLogger(ctx).InfoStatusf("Dial %d/%s failed: retrying", dials, limitText)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff(try)):
		}
	}
}

// The real provider uses pulumi's retry.Until: 100 ms, then x1.5 per attempt, at most 5 s.
func backoff(try int) time.Duration {
	d := 100 * time.Millisecond
	for i := 0; i < try && d < 5*time.Second; i++ {
		d = d * 3 / 2
	}
	if d > 5*time.Second {
		d = 5 * time.Second
	}
	return d
}

func deref(s *string, def string) string {
	if s == nil {
		return def
	}
	return *s
}
func derefInt(i *int, def int) int {
	if i == nil {
		return def
	}
	return *i
}
func derefFloat(f *float64, def float64) float64 {
	if f == nil {
		return def
	}
	return *f
}
