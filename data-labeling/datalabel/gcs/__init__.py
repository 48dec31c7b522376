"""Google Cloud Storage: the one package that talks to buckets (real GCS or the local emulator), one module a
concern; every name is importable from here (`from datalabel import gcs; gcs.bucket(...)`).

    names     bucket names, object keys and gs:// URLs, checked as untrusted
    retry     bounded, reported retries; google-cloud errors as one-line LabErrors
    buckets   the client, buckets, listings, a bucket's summary
    cors      a bucket's CORS rules
    transfer  uploads and downloads of many objects over threads
    bulk      bulk reads and writes through gcsfs
"""
from .buckets import bucket, bucket_info, client, ensure_bucket, list_blobs
from .bulk import filesystem, read_objects, write_objects
from .cors import CORS_METHODS, check_origin, get_cors, remove_cors, set_cors
from .names import check_bucket_name, check_key, gs_url_from_ref, norm_prefix, split_url
from .retry import (DEFAULT_RETRY_TIMEOUT, RETRY_HINT, RETRY_TIMEOUT_ENV, api_call, api_retry, retry_policy,
                    retry_timeout, short_error)
from .transfer import IMAGE_MAGIC, WORKERS, check_upload, download_blobs, md5_b64, parallel, upload_folder

__all__ = ["CORS_METHODS", "DEFAULT_RETRY_TIMEOUT", "IMAGE_MAGIC", "RETRY_HINT", "RETRY_TIMEOUT_ENV", "WORKERS",
           "api_call", "api_retry", "bucket", "bucket_info", "check_bucket_name", "check_key", "check_origin",
           "check_upload", "client", "download_blobs", "ensure_bucket", "filesystem", "get_cors", "gs_url_from_ref",
           "list_blobs", "md5_b64", "norm_prefix", "parallel", "read_objects", "remove_cors", "retry_policy",
           "retry_timeout", "set_cors", "short_error", "split_url", "upload_folder", "write_objects"]
