// Command sandbox_flow walks linkgate's sandbox flow with the generated Go stubs.
//
// It links Sandbox Bank with MFA, exchanges the public token, watches the connection until its
// first import is done, lists the accounts, then deletes the connection. Every call and every
// stream is bounded by a 30 s deadline; any failure exits non-zero and prints the gRPC code and the
// error's ErrorInfo reason.
//
// Built in GOPATH mode against Debian's packaged gRPC and protobuf (see clients/README.md):
//
//	LINKGATE_ADDR=127.0.0.1:50051 ./sandbox_flow
//
// LINKGATE_API_KEY, when set, is sent as `authorization: Bearer <key>` (not needed in dev mode).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	linkgatev1 "linkgate.dev/gen/go/linkgate/v1"
)

// callTimeout bounds every call and every stream.
const callTimeout = 30 * time.Second

// callContext is the context of one call or stream: a 30 s deadline, and the API key when there
// is one.
func callContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	if key := os.Getenv("LINKGATE_API_KEY"); key != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
	}
	return ctx, cancel
}

func run(conn *grpc.ClientConn) error {
	link := linkgatev1.NewLinkServiceClient(conn)
	connections := linkgatev1.NewConnectionServiceClient(conn)
	accounts := linkgatev1.NewAccountServiceClient(conn)

	ctx, cancel := callContext()
	defer cancel()
	providers, err := link.ListProviders(ctx, &linkgatev1.ListProvidersRequest{})
	if err != nil {
		return err
	}
	described := make([]string, 0, len(providers.GetProviders()))
	for _, p := range providers.GetProviders() {
		enabled := "disabled"
		if p.GetEnabled() {
			enabled = "enabled"
		}
		described = append(described, fmt.Sprintf("%s (%s)", p.GetId(), enabled))
	}
	fmt.Println("providers:", strings.Join(described, ", "))

	ctx, cancel = callContext()
	defer cancel()
	created, err := link.CreateLinkSession(ctx, &linkgatev1.CreateLinkSessionRequest{
		Provider:       "sandbox",
		InstitutionId:  "ins_sandbox_bank",
		ExternalUserId: "example-user",
	})
	if err != nil {
		return err
	}
	session := created.GetLinkSession()
	fmt.Printf("link session %s: %s\n", session.GetId(), session.GetState())

	// Watch from the start so the stream reports every state the session passes through. The first
	// message is the current state; reading it means the watch is established.
	watchCtx, stopWatch := callContext()
	defer stopWatch()
	sessionEvents, err := link.WatchLinkSession(watchCtx, &linkgatev1.WatchLinkSessionRequest{LinkSessionId: session.GetId()})
	if err != nil {
		return err
	}
	first, err := sessionEvents.Recv()
	if err == io.EOF {
		return errors.New("the link session stream ended at once")
	} else if err != nil {
		return err
	}
	fmt.Println("  watch:", first.GetLinkSession().GetState())

	ctx, cancel = callContext()
	defer cancel()
	submitted, err := link.SubmitCredentials(ctx, &linkgatev1.SubmitCredentialsRequest{
		LinkSessionId: session.GetId(),
		Credentials:   map[string]string{"username": "user_mfa", "password": "pass_good"},
	})
	if err != nil {
		return err
	}
	asked := submitted.GetLinkSession()
	fmt.Printf("submitted credentials: %s, question: %q\n", asked.GetState(), asked.GetMfaQuestion())

	ctx, cancel = callContext()
	defer cancel()
	answered, err := link.AnswerMfa(ctx, &linkgatev1.AnswerMfaRequest{LinkSessionId: session.GetId(), Answer: "1234"})
	if err != nil {
		return err
	}
	fmt.Println("answered MFA:", answered.GetLinkSession().GetState())

	// The stream ends by itself after a terminal state.
	publicToken := ""
	for {
		message, err := sessionEvents.Recv()
		if err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		s := message.GetLinkSession()
		fmt.Println("  watch:", s.GetState())
		switch s.GetState() {
		case linkgatev1.LinkSessionState_LINK_SESSION_STATE_FAILED, linkgatev1.LinkSessionState_LINK_SESSION_STATE_EXPIRED:
			return fmt.Errorf("link session ended %s: %s", s.GetState(), s.GetFailureMessage())
		case linkgatev1.LinkSessionState_LINK_SESSION_STATE_SUCCEEDED:
			publicToken = s.GetPublicToken()
		}
	}
	if publicToken == "" {
		return errors.New("the link session stream ended before SUCCEEDED")
	}

	ctx, cancel = callContext()
	defer cancel()
	exchanged, err := link.ExchangePublicToken(ctx, &linkgatev1.ExchangePublicTokenRequest{Provider: "sandbox", PublicToken: publicToken})
	if err != nil {
		return err
	}
	connection := exchanged.GetConnection()
	fmt.Printf("exchanged the public token: connection %s is %s\n", connection.GetId(), connection.GetState())

	// This stream stays open until the connection is deleted: stop it once the connection is READY.
	if err := watchUntilReady(connections, connection.GetId()); err != nil {
		return err
	}

	ctx, cancel = callContext()
	defer cancel()
	listed, err := accounts.ListAccounts(ctx, &linkgatev1.ListAccountsRequest{ConnectionId: connection.GetId()})
	if err != nil {
		return err
	}
	fmt.Printf("%d accounts:\n", len(listed.GetAccounts()))
	for _, account := range listed.GetAccounts() {
		current := account.GetBalances().GetCurrent()
		fmt.Printf("  %-24s %-28s %12s %s\n", account.GetName(), account.GetType(), current.GetAmount(), current.GetCurrency())
	}

	ctx, cancel = callContext()
	defer cancel()
	deleted, err := connections.DeleteConnection(ctx, &linkgatev1.DeleteConnectionRequest{ConnectionId: connection.GetId()})
	if err != nil {
		return err
	}
	fmt.Printf("deleted connection %s: %s\n", deleted.GetConnection().GetId(), deleted.GetConnection().GetState())
	return nil
}

// watchUntilReady prints the connection's events until it is READY, then cancels the watch.
func watchUntilReady(connections linkgatev1.ConnectionServiceClient, connectionID string) error {
	ctx, cancel := callContext()
	defer cancel()
	events, err := connections.WatchConnection(ctx, &linkgatev1.WatchConnectionRequest{ConnectionId: connectionID})
	if err != nil {
		return err
	}
	for {
		message, err := events.Recv()
		if err == io.EOF {
			return errors.New("the connection stream ended before READY")
		} else if err != nil {
			return err
		}
		event := message.GetEvent()
		fmt.Printf("  event %d: %s\n", event.GetEventId(), event.GetConnection().GetState())
		if event.GetConnection().GetState() == linkgatev1.ConnectionState_CONNECTION_STATE_READY {
			return nil
		}
	}
}

// codeName spells a gRPC code as the other languages' examples print it (NotFound -> NOT_FOUND).
func codeName(name string) string {
	var spelled strings.Builder
	for i, r := range name {
		if i > 0 && unicode.IsUpper(r) && unicode.IsLower(rune(name[i-1])) {
			spelled.WriteByte('_')
		}
		spelled.WriteRune(unicode.ToUpper(r))
	}
	return spelled.String()
}

// errorReason is the google.rpc.ErrorInfo reason linkgate puts in every error's details, if present.
func errorReason(s *status.Status) string {
	for _, detail := range s.Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return "(no ErrorInfo)"
}

func main() {
	os.Exit(sandboxFlow())
}

// sandboxFlow runs the flow against LINKGATE_ADDR and returns the exit code.
func sandboxFlow() int {
	addr := os.Getenv("LINKGATE_ADDR")
	if addr == "" {
		addr = "127.0.0.1:50051"
	}
	addr = strings.TrimPrefix(addr, "http://")
	fmt.Println("linkgate at", addr)
	// grpc.WithInsecure is the plaintext option of the packaged gRPC (1.33); newer releases also
	// offer credentials/insecure.NewCredentials().
	conn, err := grpc.Dial(addr, grpc.WithInsecure())
	if err != nil {
		fmt.Fprintln(os.Stderr, "failed:", err)
		return 1
	}
	defer conn.Close()
	if err := run(conn); err != nil {
		if s, ok := status.FromError(err); ok {
			fmt.Fprintf(os.Stderr, "failed: %s: %s (reason %s)\n", codeName(s.Code().String()), s.Message(), errorReason(s))
		} else {
			fmt.Fprintln(os.Stderr, err)
		}
		return 1
	}
	fmt.Println("sandbox flow complete")
	return 0
}
