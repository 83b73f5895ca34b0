package staging

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// This file classifies S3 errors, in one place: what a condition failure
// is, what is worth retrying, and what to tell a person who cannot reach
// their bucket.

// httpStatus returns the HTTP status of an S3 error response, or 0.
func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.StatusCode
	}
	return 0
}

// apiCode returns the S3 error code ("NoSuchKey", "SlowDown", ...), or "".
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// isNotFound: the key (or, for HEAD, anything) is not there.
func isNotFound(err error) bool {
	switch apiCode(err) {
	case "NoSuchKey", "NotFound":
		return true
	}
	return httpStatus(err) == http.StatusNotFound && apiCode(err) != "NoSuchBucket"
}

// isPreconditionFailed: If-None-Match or If-Match did not hold (HTTP 412).
func isPreconditionFailed(err error) bool {
	return apiCode(err) == "PreconditionFailed" || httpStatus(err) == http.StatusPreconditionFailed
}

// isConditionalConflict: a concurrent conditional write to the same key
// was in progress (HTTP 409); the request may be sent again.
func isConditionalConflict(err error) bool {
	return apiCode(err) == "ConditionalRequestConflict" || httpStatus(err) == http.StatusConflict
}

// retryable says whether a failed request may be sent again: throttling,
// server errors, and connections that broke or could not be made. Context
// errors never are.
func retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if isConditionalConflict(err) {
		return true
	}
	switch apiCode(err) {
	case "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
		"RequestThrottled", "TooManyRequestsException", "RequestTimeout",
		"InternalError", "ServiceUnavailable", "XMinioServerNotInitialized",
		"ClientDisconnected": // a server going down answers 499 to requests in flight
		return true
	}
	if s := httpStatus(err); s >= 500 || s == http.StatusTooManyRequests {
		return true
	}
	if httpStatus(err) != 0 {
		return false // any other answer from the server is final
	}
	return connectionError(err)
}

// connectionError: the request did not get an answer because the
// connection failed (refused, reset, closed early, timed out).
func connectionError(err error) bool {
	var ne net.Error
	var oe *net.OpError
	var rse *awshttp.ResponseTimeoutError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return true
	case errors.As(err, &oe), errors.As(err, &rse):
		return true
	case errors.As(err, &ne) && ne.Timeout():
		return true
	}
	var rt interface{ RetryableError() bool }
	if errors.As(err, &rt) && rt.RetryableError() {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "connection reset") || strings.Contains(msg, "EOF") ||
		strings.Contains(msg, "broken pipe") || strings.Contains(msg, "server closed")
}

// ambiguous says whether a failed write may have taken effect anyway: the
// request was sent but no answer came back.
func ambiguous(err error) bool {
	s := httpStatus(err)
	return s == 0 || s >= 500 || apiCode(err) == "ClientDisconnected"
}

// ErrAccess marks errors that no retry will fix: the bucket is missing,
// access is denied, the credentials are missing or expired, or the region
// is wrong. Its message says which, and what to do.
var ErrAccess = errors.New("cannot use the bucket")

// accessError turns an S3 error into one line a person can act on, or
// returns nil when err is not about access.
func accessError(err error, bucket string) error {
	where := "s3://" + bucket
	switch code := apiCode(err); {
	case code == "NoSuchBucket":
		return fmt.Errorf("%w: bucket %s does not exist: check its name, and the region (AWS_REGION or the profile's)", ErrAccess, bucket)
	case code == "AccessDenied" || code == "AllAccessDisabled" || httpStatus(err) == http.StatusForbidden && code == "":
		return fmt.Errorf("%w: access to %s denied: the credentials in use lack s3 permissions on it (choose others with --profile or AWS_PROFILE)", ErrAccess, where)
	case code == "ExpiredToken" || code == "TokenRefreshRequired" || code == "ExpiredTokenException":
		return fmt.Errorf("%w: the AWS credentials have expired: renew them (for example aws sso login) and try again", ErrAccess)
	case code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || code == "InvalidToken":
		return fmt.Errorf("%w: the AWS credentials are not valid for %s (%s): check the access key and secret, or --profile", ErrAccess, where, code)
	case code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" || code == "IllegalLocationConstraintException" || httpStatus(err) == http.StatusMovedPermanently:
		return fmt.Errorf("%w: bucket %s is in another region than the one configured: set AWS_REGION to the bucket's region", ErrAccess, bucket)
	}
	if isMissingCredentials(err) {
		return fmt.Errorf("%w: no AWS credentials found: configure a profile (aws configure, or --profile), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", ErrAccess)
	}
	return nil
}

func isMissingCredentials(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "failed to retrieve credentials") ||
		strings.Contains(msg, "no EC2 IMDS role found") ||
		strings.Contains(msg, "static credentials are empty")
}
