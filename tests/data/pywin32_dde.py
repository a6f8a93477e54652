# A DDE service and a client in the style of pywin32's DDE demos.
#
#   pywin32_dde.py server SERVICE     serves topic "Prices" and "RunAnyCommand"
#   pywin32_dde.py client SERVICE
import sys
import time

import dde


class Wrapper:  # what pywin.mfc.object.Object does: keep the C object in _obj_
    def __init__(self, obj):
        self.__dict__["_obj_"] = obj

    def __getattr__(self, attr):
        return getattr(self._obj_, attr)


class CommandTopic(Wrapper):
    def __init__(self, name):
        Wrapper.__init__(self, dde.CreateTopic(name))

    def Exec(self, cmd):
        print("EXEC", cmd, flush=True)
        if cmd == "Quit":
            QUIT.append(1)


class PriceTopic(Wrapper):
    def __init__(self, name):
        topic = dde.CreateTopic(name)
        self.__dict__["acme"] = dde.CreateStringItem("ACME")
        topic.AddItem(self.acme)
        Wrapper.__init__(self, topic)

    def Poke(self, item, data):
        print("POKE", item, data, flush=True)
        self.acme.SetData(data)


QUIT = []


def server(service):
    srv = dde.CreateServer()
    srv.AddTopic(CommandTopic("RunAnyCommand"))
    prices = PriceTopic("Prices")
    prices.acme.SetData("101.5")
    srv.AddTopic(prices)
    srv.Create(service)
    print("READY", flush=True)
    while not QUIT:
        time.sleep(0.02)
    srv.Destroy()


def client(service):
    conv = dde.CreateConversation(dde.CreateServer())
    conv.ConnectTo(service, "Prices")
    print("REQUEST", conv.Request("ACME"))
    conv.Poke("ACME", "99.0")
    print("REQUEST", conv.Request("ACME"))
    cmd = dde.CreateConversation(None)
    cmd.ConnectTo(service, "RunAnyCommand")
    cmd.Exec("Quit")
    try:
        dde.CreateConversation(None).ConnectTo(service + "-none", "Prices")
    except dde.error:
        print("NO-SUCH-SERVICE")


if __name__ == "__main__":
    (server if sys.argv[1] == "server" else client)(sys.argv[2])
