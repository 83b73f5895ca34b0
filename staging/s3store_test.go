package staging_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/slicerburst/burst/internal/testminio"
	"github.com/slicerburst/burst/staging"
	"github.com/slicerburst/burst/staging/storetest"
)

// TestS3StoreConformance runs the store suite against a real S3 server
// (MinIO), each subtest in a bucket of its own.
func TestS3StoreConformance(t *testing.T) {
	srv := testminio.Start(t)
	client := srv.Client(t)
	storetest.Run(t, func(t *testing.T) staging.Store {
		return staging.NewS3Store(client, srv.NewBucket(t), "team/burst", nil)
	})
}

// TestS3StoreConformanceAWS runs the same suite against real S3, under a
// fresh prefix of $BURST_TEST_S3_BUCKET, with the default AWS
// configuration. It never runs by default.
func TestS3StoreConformanceAWS(t *testing.T) {
	bucket := os.Getenv("BURST_TEST_S3_BUCKET")
	if bucket == "" {
		t.Skip("skipped: set BURST_TEST_S3_BUCKET to a bucket of yours to run the store suite against real S3")
	}
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	client := s3.NewFromConfig(cfg, staging.S3ClientOptions(false))
	storetest.Run(t, func(t *testing.T) staging.Store {
		var b [6]byte
		_, _ = rand.Read(b[:])
		prefix := "burst-test/" + hex.EncodeToString(b[:])
		s := staging.NewS3Store(client, bucket, prefix, nil)
		t.Cleanup(func() {
			objs, _ := s.List(context.Background(), "")
			for _, o := range objs {
				_ = s.Delete(context.Background(), o.Key)
			}
		})
		return s
	})
}
