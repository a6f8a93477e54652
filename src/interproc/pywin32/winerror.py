"""``winerror``: Win32 error codes (the real values) for what the face implements."""

ERROR_SUCCESS = NO_ERROR = 0
ERROR_INVALID_FUNCTION = 1
ERROR_FILE_NOT_FOUND = 2
ERROR_PATH_NOT_FOUND = 3
ERROR_ACCESS_DENIED = 5
ERROR_INVALID_HANDLE = 6
ERROR_NOT_ENOUGH_MEMORY = 8
ERROR_GEN_FAILURE = 31
ERROR_HANDLE_EOF = 38
ERROR_NOT_SUPPORTED = 50
ERROR_INVALID_PARAMETER = 87
ERROR_BROKEN_PIPE = 109
ERROR_SEM_TIMEOUT = 121
ERROR_INSUFFICIENT_BUFFER = 122
ERROR_INVALID_NAME = 123
ERROR_ALREADY_EXISTS = 183
ERROR_BAD_PIPE = 230
ERROR_PIPE_BUSY = 231
ERROR_NO_DATA = 232
ERROR_PIPE_NOT_CONNECTED = 233
ERROR_MORE_DATA = 234
WAIT_TIMEOUT = 258
ERROR_NOT_OWNER = 288
ERROR_TOO_MANY_POSTS = 298
ERROR_PIPE_CONNECTED = 535
ERROR_PIPE_LISTENING = 536
ERROR_OPERATION_ABORTED = 995
ERROR_IO_INCOMPLETE = 996
ERROR_IO_PENDING = 997
ERROR_INVALID_FLAGS = 1004
ERROR_INVALID_WINDOW_HANDLE = 1400
ERROR_CLIPBOARD_NOT_OPEN = 1418
ERROR_TIMEOUT = 1460

#: FormatMessage's text for each code (pywintypes.error's strerror).
MESSAGES = {
    0: "The operation completed successfully.",
    1: "Incorrect function.",
    2: "The system cannot find the file specified.",
    3: "The system cannot find the path specified.",
    5: "Access is denied.",
    6: "The handle is invalid.",
    8: "Not enough memory resources are available to process this command.",
    31: "A device attached to the system is not functioning.",
    38: "Reached the end of the file.",
    50: "The request is not supported.",
    87: "The parameter is incorrect.",
    109: "The pipe has been ended.",
    121: "The semaphore timeout period has expired.",
    122: "The data area passed to a system call is too small.",
    123: "The filename, directory name, or volume label syntax is incorrect.",
    183: "Cannot create a file when that file already exists.",
    230: "The pipe state is invalid.",
    231: "All pipe instances are busy.",
    232: "The pipe is being closed.",
    233: "No process is on the other end of the pipe.",
    234: "More data is available.",
    258: "The wait operation timed out.",
    288: "Attempt to release mutex not owned by caller.",
    298: "Too many posts were made to a semaphore.",
    535: "There is a process on other end of the pipe.",
    536: "Waiting for a process to open the other end of the pipe.",
    995: "The I/O operation has been aborted because of either a thread exit or an application request.",
    996: "Overlapped I/O event is not in a signaled state.",
    997: "Overlapped I/O operation is in progress.",
    1004: "Invalid flags.",
    1400: "Invalid window handle.",
    1418: "Thread does not have a clipboard open.",
    1460: "This operation returned because the timeout period expired.",
}
