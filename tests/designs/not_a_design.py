class Memory:
    async def retrieve(self, start):
        return {}
