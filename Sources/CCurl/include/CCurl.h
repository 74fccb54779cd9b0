#ifndef CCURL_H
#define CCURL_H

#include <curl/curl.h>

/* curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot call: one non-variadic
   function per argument type (as swift-corelibs-foundation's _CFURLSessionInterface does). */

CURLcode cx_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode cx_curl_setopt_offset(CURL *handle, CURLoption option, curl_off_t value);
CURLcode cx_curl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode cx_curl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode cx_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);

typedef size_t (*cx_curl_data_callback)(char *buffer, size_t size, size_t count, void *context);
CURLcode cx_curl_setopt_data_callback(CURL *handle, CURLoption option, cx_curl_data_callback callback);

typedef int (*cx_curl_debug_callback)(CURL *handle, curl_infotype type, char *data, size_t size, void *context);
CURLcode cx_curl_setopt_debug_callback(CURL *handle, cx_curl_debug_callback callback);

CURLcode cx_curl_getinfo_string(CURL *handle, CURLINFO info, const char **value);
CURLcode cx_curl_getinfo_socket(CURL *handle, CURLINFO info, curl_socket_t *value);

#endif
