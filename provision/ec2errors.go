package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/aws/smithy-go"
)

// This file classifies the EC2 error codes that launching and ending a
// fleet act on, in one place, and retries what is worth retrying.

// ErrQuota is what a launch stopped by an account quota (a service limit)
// wraps: more of the same request cannot succeed until the quota is raised
// through Service Quotas.
var ErrQuota = errors.New("EC2 quota reached")

// ErrNoCapacity is what a launch that got no instance at all wraps when
// EC2 had no capacity for any of the offers it was allowed to use.
var ErrNoCapacity = errors.New("no EC2 capacity")

// QuotaError says which quota stopped a launch. errors.Is(err, ErrQuota).
type QuotaError struct {
	// Code is EC2's error code (VcpuLimitExceeded, ...).
	Code string
	// Message is EC2's message.
	Message string
	// Market is the market of the request that hit it.
	Market Market
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("%v: %s (%s, %s): ask for a Service Quotas increase of %q in this region (Service Quotas console, Amazon Elastic Compute Cloud)",
		ErrQuota, quotaName(e.Code, e.Market), e.Code, e.Message, quotaName(e.Code, e.Market))
}

func (e *QuotaError) Is(target error) bool { return target == ErrQuota }

// quotaName is the Service Quotas name of the quota behind code.
func quotaName(code string, m Market) string {
	switch {
	case code == "MaxSpotInstanceCountExceeded" || m == Spot && code == "VcpuLimitExceeded":
		return "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests"
	case code == "VcpuLimitExceeded":
		return "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances"
	default:
		return "Running On-Demand instances (instance count)"
	}
}

// ec2Code is the AWS error code of err, or "" when err is not an API error.
func ec2Code(err error) (code, msg string) {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode(), ae.ErrorMessage()
	}
	return "", ""
}

// launchErrorKind is what a launch does about an error code.
type launchErrorKind int

const (
	// errOther: not something to work around; the offer is dropped (in a
	// fleet answer) or the launch fails (for the whole call).
	errOther launchErrorKind = iota
	// errCapacity: this pool (type, zone, market) has no room now; try
	// the others.
	errCapacity
	// errMarketCapacity: the whole market is out of reach now (the spot
	// instance count limit); try the next market.
	errMarketCapacity
	// errQuota: an account limit; stop.
	errQuota
)

// classifyLaunchError sorts the codes that CreateFleet answers with.
func classifyLaunchError(code string) launchErrorKind {
	switch code {
	case "InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity",
		"InsufficientReservedInstanceCapacity", "SpotMaxPriceTooLow", "Unsupported",
		"UnfulfillableCapacity", "InsufficientFreeAddressesInSubnet":
		return errCapacity
	case "MaxSpotInstanceCountExceeded", "MaxSpotFleetRequestCountExceeded":
		return errMarketCapacity
	case "VcpuLimitExceeded", "MaxInstanceCountExceeded", "InstanceLimitExceeded":
		return errQuota
	}
	return errOther
}

// isRetryable reports whether a call that failed with code may simply be
// made again: throttling, and EC2's own transient failures. Every call
// burst retries is idempotent (reads, deletes, and creates with a
// ClientToken).
func isRetryable(code string) bool {
	switch code {
	case "RequestLimitExceeded", "Throttling", "ThrottlingException", "RequestThrottled",
		"RequestThrottledException", "TooManyRequestsException", "SlowDown",
		"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable":
		return true
	}
	return false
}

// isNotFound reports whether code says the thing is already gone.
func isNotFound(code string) bool {
	switch code {
	case "InvalidInstanceID.NotFound", "InvalidLaunchTemplateName.NotFoundException",
		"InvalidLaunchTemplateId.NotFound", "InvalidLaunchTemplateId.NotFoundException",
		"InvalidLaunchTemplateName.NotFound":
		return true
	}
	return false
}

// retryPolicy is how often and how patiently throttled calls are retried.
type retryPolicy struct {
	attempts int
	base     time.Duration
	max      time.Duration
}

// ec2Retry is the policy of every EC2 call here. Tests shorten it.
var ec2Retry = retryPolicy{attempts: 8, base: 500 * time.Millisecond, max: 20 * time.Second}

// retryEC2 calls fn until it succeeds, fails with an error that is not
// retryable, or the attempts run out, sleeping between attempts with
// exponential backoff and full jitter. The context's own errors come
// first: a cancelled context is never retried.
func retryEC2[T any](ctx context.Context, log *slog.Logger, what string, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	delay := ec2Retry.base
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return zero, err
		}
		v, err := fn(ctx)
		if err == nil {
			return v, nil
		}
		if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return zero, err
		}
		code, _ := ec2Code(err)
		if !isRetryable(code) || attempt >= ec2Retry.attempts {
			return zero, err
		}
		sleep := delay/2 + rand.N(delay/2+1)
		log.Warn("EC2 call throttled or failing; retrying", "call", what, "code", code, "attempt", attempt, "after", sleep)
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return zero, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, ec2Retry.max)
	}
}
