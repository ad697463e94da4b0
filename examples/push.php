<?php
// push.php: push a message to a uid through push_api, with PHP's own HTTP streams.
// Run: PUSH_API_KEY=<key> php push.php alice "hello from PHP"
// PUSH_API_URL defaults to http://127.0.0.1:7070 (the push_api site of Caddyfile.example).
if ($argc !== 3) {
    fwrite(STDERR, "usage: php push.php <uid> <message>\n");
    exit(2);
}
$api = getenv('PUSH_API_URL') ?: 'http://127.0.0.1:7070';
$context = stream_context_create(['http' => [
    'method' => 'POST',
    'header' => "Content-Type: application/json\r\nAuthorization: Bearer " . getenv('PUSH_API_KEY') . "\r\n",
    'content' => json_encode(['uid' => $argv[1], 'data' => $argv[2]]),
    'timeout' => 10,
    'ignore_errors' => true, // read the body of a refusal too
]]);
$receipt = @file_get_contents("$api/send", false, $context);
if ($receipt === false) {
    fwrite(STDERR, "push_api at $api did not answer\n");
    exit(1);
}
if (!str_contains($http_response_header[0], ' 200 ')) {
    fwrite(STDERR, "push_api refused: {$http_response_header[0]} $receipt");
    exit(1);
}
echo $receipt;
