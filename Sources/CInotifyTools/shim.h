#include <sys/inotify.h>
#include <inotifytools/inotifytools.h>

/// The name that follows an event (a flexible array member Swift cannot reach).
static inline const char *inotifytools_event_name(const struct inotify_event *event) { return event->name; }
